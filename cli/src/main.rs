//! The `ferrite` command line: a drop-in for the `ollama` CLI (a thin client of the
//! HTTP API at `OLLAMA_HOST`, plus `serve`), and ferrite's own `generate` and
//! `bench`. Subcommands live in their own modules; `main` parses arguments and
//! maps errors to `Error: <message>` with exit status 1.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod bench;
mod bench_e2e;
mod bench_gpu;
mod bench_parallel;
mod client;
mod commands;
mod env;
mod format;
mod generate;
mod progress;
mod repl;
mod run;
mod serve;

/// The client version `--version` compares with the server's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

const ENV_HOST: &str = "Environment Variables:\n      OLLAMA_HOST                IP Address for the ollama server (default 127.0.0.1:11434)\n";

const ENV_RUN: &str = "Environment Variables:
      OLLAMA_HOST                IP Address for the ollama server (default 127.0.0.1:11434)
      OLLAMA_NOHISTORY           Do not preserve readline history
      FERRITE_INTERACTIVE        Chat even when stdin/stdout are not terminals (reads lines from stdin)
";

const ENV_SERVE: &str = "Environment Variables:
      OLLAMA_DEBUG               Show additional debug information (e.g. OLLAMA_DEBUG=1)
      OLLAMA_HOST                IP Address for the ollama server (default 127.0.0.1:11434)
      OLLAMA_CONTEXT_LENGTH      Context length to use unless otherwise specified
      OLLAMA_KEEP_ALIVE          The duration that models stay loaded in memory (default \"5m\")
      OLLAMA_MAX_LOADED_MODELS   Maximum number of loaded models per GPU
      OLLAMA_MAX_QUEUE           Maximum number of queued requests
      OLLAMA_MODELS              The path to the models directory
      OLLAMA_NUM_PARALLEL        Maximum number of parallel requests
      OLLAMA_NOPRUNE             Do not prune model blobs on startup
      OLLAMA_ORIGINS             A comma separated list of allowed origins
      OLLAMA_SCHED_SPREAD        Always schedule model across all GPUs
      OLLAMA_FLASH_ATTENTION     Enabled flash attention
      OLLAMA_KV_CACHE_TYPE       Quantization type for the K/V cache (default: f16)
      OLLAMA_LLM_LIBRARY         Set LLM library to bypass autodetection
      OLLAMA_GPU_OVERHEAD        Reserve a portion of VRAM per GPU (bytes)
      OLLAMA_LOAD_TIMEOUT        How long to allow model loads to stall before giving up (default \"5m\")
";

#[derive(Parser)]
#[command(
    name = "ferrite",
    about = "Large language model runner (Ollama-compatible, pure Rust)",
    disable_version_flag = true
)]
struct Cli {
    /// Show version information
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start ollama
    #[command(visible_alias = "start", after_help = ENV_SERVE)]
    Serve,
    /// Create a model from a Modelfile
    #[command(after_help = ENV_HOST)]
    Create {
        #[arg(value_name = "MODEL")]
        model: String,
        /// Name of the Modelfile (default "Modelfile")
        #[arg(short = 'f', long = "file")]
        file: Option<PathBuf>,
        /// Quantize model to this level (e.g. q4_K_M)
        #[arg(short = 'q', long = "quantize")]
        quantize: Option<String>,
    },
    /// Show information for a model
    #[command(after_help = ENV_HOST)]
    Show {
        #[arg(value_name = "MODEL")]
        model: String,
        /// Show license of a model
        #[arg(long)]
        license: bool,
        /// Show Modelfile of a model
        #[arg(long)]
        modelfile: bool,
        /// Show parameters of a model
        #[arg(long)]
        parameters: bool,
        /// Show template of a model
        #[arg(long)]
        template: bool,
        /// Show system message of a model
        #[arg(long)]
        system: bool,
        /// Show detailed model information
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Run a model
    #[command(after_help = ENV_RUN)]
    Run(run::RunArgs),
    /// Stop a running model
    #[command(after_help = ENV_HOST)]
    Stop {
        #[arg(value_name = "MODEL")]
        model: String,
    },
    /// Pull a model from a registry
    #[command(after_help = ENV_HOST)]
    Pull {
        #[arg(value_name = "MODEL")]
        model: String,
        /// Use an insecure registry
        #[arg(long)]
        insecure: bool,
    },
    /// Push a model to a registry
    #[command(after_help = ENV_HOST)]
    Push {
        #[arg(value_name = "MODEL")]
        model: String,
        /// Use an insecure registry
        #[arg(long)]
        insecure: bool,
    },
    /// Sign in to ollama.com
    #[command(alias = "login", after_help = ENV_HOST)]
    Signin,
    /// Sign out from ollama.com
    #[command(alias = "logout", after_help = ENV_HOST)]
    Signout,
    /// List models
    #[command(visible_alias = "ls", after_help = ENV_HOST)]
    List {
        /// Only models whose name starts with this (case-insensitive)
        prefix: Option<String>,
    },
    /// List running models
    #[command(after_help = ENV_HOST)]
    Ps {
        /// Only models whose name starts with this
        prefix: Option<String>,
    },
    /// Copy a model
    #[command(after_help = ENV_HOST)]
    Cp {
        #[arg(value_name = "SOURCE")]
        source: String,
        #[arg(value_name = "DESTINATION")]
        destination: String,
    },
    /// Remove a model
    #[command(after_help = ENV_HOST)]
    Rm {
        #[arg(value_name = "MODEL", required = true)]
        models: Vec<String>,
    },
    /// Continue a prompt straight from a GGUF file (no server, no chat template).
    Generate(generate::GenerateArgs),
    /// Benchmarks of ferrite's building blocks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Time the matvec/matmul kernels of every weight type and ISA level against the
    /// machine's memory bandwidth; writes kernels.json and kernels.md.
    Kernels(bench::KernelsArgs),
    /// Prompt processing and generation tokens/s of the real models, side by side with
    /// llama.cpp's llama-bench; writes e2e.json and e2e.md.
    E2e(bench_e2e::E2eArgs),
    /// Aggregate tokens/s of SmolLM2 through `ferrite serve` with 1, 2 and 4 concurrent
    /// streams; writes parallel.json and parallel.md.
    Parallel(bench_parallel::ParallelArgs),
    /// The wgpu backend: matvec GB/s per weight type and the real models' tokens/s with
    /// every layer on the GPU; writes gpu.json and gpu.md.
    Gpu(bench_gpu::GpuArgs),
}

/// A connected client (`HEAD /` first, as every `ollama` client verb does).
fn connect() -> Result<client::Client, String> {
    let c = client::Client::from_env();
    c.heartbeat()?;
    Ok(c)
}

fn dispatch(cli: Cli) -> Result<(), String> {
    if cli.version {
        print!("{}", commands::version(&client::Client::from_env()));
        return Ok(());
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help().map_err(|e| e.to_string())?;
        return Ok(());
    };
    match command {
        Command::Serve => serve::run(),
        Command::Create {
            model,
            file,
            quantize,
        } => {
            let c = connect()?;
            commands::create(&c, &model, file.as_deref(), quantize.as_deref())
        }
        Command::Show {
            model,
            license,
            modelfile,
            parameters,
            template,
            system,
            verbose,
        } => {
            use commands::ShowField;
            let picked: Vec<ShowField> = [
                (license, ShowField::License),
                (modelfile, ShowField::Modelfile),
                (parameters, ShowField::Parameters),
                (system, ShowField::System),
                (template, ShowField::Template),
            ]
            .into_iter()
            .filter_map(|(on, f)| on.then_some(f))
            .collect();
            if picked.len() > 1 {
                return Err("only one of '--license', '--modelfile', '--parameters', '--system', or '--template' can be specified".into());
            }
            let c = connect()?;
            print!(
                "{}",
                commands::show(&c, &model, picked.first().copied(), verbose)?
            );
            Ok(())
        }
        Command::Run(args) => run::run(&args),
        Command::Stop { model } => commands::stop(&connect()?, &model),
        Command::Pull { model, insecure } => {
            commands::pull(&connect()?, &model, insecure).map_err(String::from)
        }
        Command::Push { model, insecure } => {
            print!("{}", commands::push(&connect()?, &model, insecure)?);
            Ok(())
        }
        Command::Signin => {
            print!("{}", commands::signin(&connect()?)?);
            Ok(())
        }
        Command::Signout => {
            print!("{}", commands::signout(&connect()?)?);
            Ok(())
        }
        Command::List { prefix } => {
            print!("{}", commands::list(&connect()?, prefix.as_deref())?);
            Ok(())
        }
        Command::Ps { prefix } => {
            print!("{}", commands::ps(&connect()?, prefix.as_deref())?);
            Ok(())
        }
        Command::Cp {
            source,
            destination,
        } => {
            print!("{}", commands::copy(&connect()?, &source, &destination)?);
            Ok(())
        }
        Command::Rm { models } => commands::remove(&connect()?, &models),
        Command::Bench {
            what: BenchCommand::Kernels(args),
        } => bench::run_kernels(&args),
        Command::Bench {
            what: BenchCommand::E2e(args),
        } => bench_e2e::run_e2e(&args),
        Command::Bench {
            what: BenchCommand::Parallel(args),
        } => bench_parallel::run_parallel(&args),
        Command::Bench {
            what: BenchCommand::Gpu(args),
        } => bench_gpu::run_gpu(&args),
        Command::Generate(args) => generate::run(&args),
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                e.exit();
            }
            let _ = e.print();
            std::process::exit(1);
        }
    };
    if let Err(e) = dispatch(cli) {
        eprintln!("Error: {e}");
        std::process::exit(1);
    }
}
