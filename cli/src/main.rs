//! The `ferrite` command line. Subcommands live in their own modules; `main` only
//! parses arguments and maps errors to an exit status.

use clap::{Parser, Subcommand};

mod bench;
mod bench_e2e;
mod generate;

#[derive(Parser)]
#[command(
    name = "ferrite",
    version,
    about = "Run large language models locally (GGUF, pure Rust)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench {
            what: BenchCommand::Kernels(args),
        } => bench::run_kernels(&args),
        Command::Bench {
            what: BenchCommand::E2e(args),
        } => bench_e2e::run_e2e(&args),
        Command::Generate(args) => generate::run(&args),
    };
    if let Err(e) = result {
        eprintln!("ferrite: {e}");
        std::process::exit(1);
    }
}
