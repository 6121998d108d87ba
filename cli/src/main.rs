//! The `ferrite` command line. Subcommands live in their own modules; `main` only
//! parses arguments and maps errors to an exit status.

use clap::{Parser, Subcommand};

mod bench;

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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench {
            what: BenchCommand::Kernels(args),
        } => bench::run_kernels(&args),
    };
    if let Err(e) = result {
        eprintln!("ferrite: {e}");
        std::process::exit(1);
    }
}
