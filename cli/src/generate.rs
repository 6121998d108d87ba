//! `ferrite generate`: answer one prompt straight from a GGUF file, without a server
//! (raw completion, no chat template). The quickest way to see the engine work.

use clap::Args;
use engine::generate::{generate, GenerateOptions};
use engine::model::{LoadOptions, Model};
use engine::tokenizer::{Tokenizer, TokenizerOptions};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// GGUF model file.
    #[arg(short, long)]
    model: PathBuf,
    /// Text to continue.
    prompt: String,
    /// Maximum tokens to generate (-1 = until end of text or a full context).
    #[arg(short = 'n', long, default_value_t = 128)]
    num_predict: i64,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Random seed (-1 = random).
    #[arg(long, default_value_t = -1)]
    seed: i64,
    #[arg(long, default_value_t = 40)]
    top_k: i64,
    #[arg(long, default_value_t = 0.9)]
    top_p: f32,
    /// Context window in tokens.
    #[arg(long, default_value_t = 4096)]
    num_ctx: usize,
    /// Stop sequence (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print timings after the answer, as `ollama run --verbose` does.
    #[arg(long)]
    verbose: bool,
}

pub fn run(args: &GenerateArgs) -> Result<(), String> {
    let t_load = Instant::now();
    let model = Model::load(
        &args.model,
        &LoadOptions {
            threads: args.threads,
        },
    )?;
    let tokenizer = Tokenizer::from_gguf(&model.file, TokenizerOptions::default())
        .map_err(|e| format!("{}: {e}", args.model.display()))?;
    let load = t_load.elapsed();
    let prompt = tokenizer.encode(&args.prompt, true, false);
    let n_ctx = args.num_ctx.min(model.hp.n_ctx_train.max(1));
    let mut cache = model.new_cache(n_ctx);
    let mut opts = GenerateOptions {
        num_predict: args.num_predict,
        stop: args.stop.clone(),
        ..GenerateOptions::default()
    };
    opts.sampler.temperature = args.temperature;
    opts.sampler.seed = args.seed;
    opts.sampler.top_k = args.top_k;
    opts.sampler.top_p = args.top_p;
    opts.sampler.validate()?;
    let t_total = Instant::now();
    let mut stdout = std::io::stdout().lock();
    print!("{}", args.prompt);
    let stats = generate(&model, &tokenizer, &mut cache, &prompt, &opts, |text| {
        stdout.write_all(text.as_bytes()).is_ok() && stdout.flush().is_ok()
    })?;
    println!();
    if args.verbose {
        let total = t_total.elapsed() + load;
        let rate = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
        eprintln!("total duration:       {total:?}");
        eprintln!("load duration:        {load:?}");
        eprintln!("prompt eval count:    {} token(s)", stats.prompt_tokens);
        eprintln!("prompt eval duration: {:?}", stats.prompt_duration);
        eprintln!(
            "prompt eval rate:     {:.2} tokens/s",
            rate(stats.prompt_tokens, stats.prompt_duration)
        );
        eprintln!("eval count:           {} token(s)", stats.eval_tokens);
        eprintln!("eval duration:        {:?}", stats.eval_duration);
        eprintln!(
            "eval rate:            {:.2} tokens/s",
            rate(stats.eval_tokens, stats.eval_duration)
        );
    }
    Ok(())
}
