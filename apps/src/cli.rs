//! The `migratory` command line. Scripts and users rely on these names: extend them,
//! do not rename them.
//!
//! ```text
//! migratory serve --ip ADDR/PREFIX [--name NAME] [--idle interrupt|sleep|spin]
//!                 [--app NAME --port N] [--root DIR] [--device DPDK-PORT-NAME] -- EAL-ARGS
//! ```
//! Exit codes: 0 clean stop, 1 failure while running, 2 bad arguments or set-up.
use clap::{Parser, Subcommand, ValueEnum};
use engine::poll::IdleStrategy;
use engine::wire::ipv4::Ipv4Cidr;

use crate::serve;

/// Exit code for bad arguments and set-up problems.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a failure after start-up.
pub const EXIT_FAILURE: i32 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "migratory",
    version,
    about = "Kernel-bypass TCP engine on DPDK with live connection migration"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an engine on a DPDK port: answers ARP and ping for its address, and serves an
    /// application when one is given.
    Serve(ServeArgs),
    /// Talk to a running engine through its control socket.
    Ctl(CtlArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct CtlArgs {
    /// The engine's name (as given to `serve --name`).
    #[arg(long, default_value = "migratory", value_parser = parse_name)]
    pub name: String,
    /// Print the engine's JSON answer as it is.
    #[arg(long, global = true)]
    pub json: bool,
    /// Where control sockets live.
    #[arg(long, default_value = crate::ctl::DEFAULT_DIR, value_name = "DIR")]
    pub ctl_dir: std::path::PathBuf,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum CtlCommand {
    /// Counters of every core and their total.
    Stats,
}

/// How the poll loop idles when no packet arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdleArg {
    /// Block on receive interrupts (net_tap and NICs that have them): ~0% CPU when idle.
    Interrupt,
    /// Sleep with exponential back-off (net_memif and ports without interrupts).
    Sleep,
    /// Spin on the port: lowest latency, one whole core (benchmarks).
    Spin,
}

impl From<IdleArg> for IdleStrategy {
    fn from(a: IdleArg) -> Self {
        match a {
            IdleArg::Interrupt => IdleStrategy::Interrupt,
            IdleArg::Sleep => IdleStrategy::Sleep,
            IdleArg::Spin => IdleStrategy::Spin,
        }
    }
}

/// Applications the engine can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppName {
    Echo,
    Discard,
    Http,
    Iperf3,
}

impl AppName {
    /// The application's well-known TCP port.
    pub fn default_port(self) -> u16 {
        match self {
            AppName::Echo => 7,
            AppName::Discard => 9,
            AppName::Http => 80,
            AppName::Iperf3 => 5201,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The engine's IPv4 address and prefix length, e.g. 10.10.0.2/24.
    #[arg(long, value_name = "ADDR/PREFIX", value_parser = parse_cidr)]
    pub ip: Ipv4Cidr,
    /// A name for this engine (letters, digits, '-', '_'; at most 32). It also names the
    /// DPDK file prefix (`migratory-NAME`) when the EAL arguments give none.
    #[arg(long, default_value = "migratory", value_parser = parse_name)]
    pub name: String,
    /// How the poll loop idles.
    #[arg(long, value_enum, default_value_t = IdleArg::Interrupt)]
    pub idle: IdleArg,
    /// The application to serve.
    #[arg(long, value_enum)]
    pub app: Option<AppName>,
    /// The application's TCP port (default: the application's well-known port).
    #[arg(long, requires = "app")]
    pub port: Option<u16>,
    /// The directory whose files `--app http` serves (loaded into memory at start).
    #[arg(long, value_name = "DIR", requires = "app")]
    pub root: Option<std::path::PathBuf>,
    /// Cores (lcores) to run, each with its own queue pair; flows are spread over them
    /// and frames reaching the wrong core are handed to their owner.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=128))]
    pub cores: u16,
    /// Seeded fault injection on the port, e.g. `drop=0.05,seed=7` (keys: drop, dup,
    /// reorder, reorder_after, reorder_timeout, delay, delay_p, seed, dir=rx|tx|both, hold).
    #[arg(long, value_name = "SPEC")]
    pub fault: Option<String>,
    /// The DPDK port to use, by device name (e.g. net_tap0); default: the first port.
    #[arg(long, value_name = "DPDK-PORT-NAME")]
    pub device: Option<String>,
    /// Where the control socket (`NAME.sock`) is created.
    #[arg(long, default_value = crate::ctl::DEFAULT_DIR, value_name = "DIR")]
    pub ctl_dir: std::path::PathBuf,
    /// Arguments for DPDK's EAL, after `--`, e.g. `-l 0 --in-memory --vdev=net_tap0,iface=mg0`.
    #[arg(last = true, value_name = "EAL-ARGS")]
    pub eal: Vec<String>,
}

fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    s.parse::<Ipv4Cidr>().map_err(|e| e.to_string())
}

fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("use 1-32 characters from [A-Za-z0-9_-]".into())
    }
}

/// Parses the process arguments and runs the command; returns the exit code.
pub fn main() -> i32 {
    run(std::env::args_os())
}

/// Parses `args` (program name first) and runs the command; returns the exit code.
pub fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return report_clap_error(&e),
    };
    match cli.command {
        Command::Serve(args) => serve::serve(&args),
        Command::Ctl(args) => ctl(&args),
    }
}

fn ctl(args: &CtlArgs) -> i32 {
    let command = match args.command {
        CtlCommand::Stats => "stats",
    };
    match crate::ctl::request(&args.ctl_dir, &args.name, command) {
        Ok(v) if args.json => {
            println!("{v}");
            0
        }
        Ok(v) => {
            print!("{}", crate::ctl::render_stats(&v));
            0
        }
        Err(e @ crate::ctl::CtlError::NotRunning(..)) => {
            eprintln!("migratory: {e}");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("migratory: {e}");
            EXIT_FAILURE
        }
    }
}

/// Help and version print as usual; every other parse error is one line on stderr.
fn report_clap_error(e: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                EXIT_USAGE
            } else {
                0
            }
        }
        _ => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("error: bad arguments")
                .trim_end();
            eprintln!("{first} (see `migratory --help`)");
            EXIT_USAGE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("migratory").chain(args.iter().copied()))
    }

    #[test]
    fn serve_parses_the_contract() {
        let cli = parse(&[
            "serve",
            "--ip",
            "10.1.0.2/24",
            "--name",
            "e1",
            "--idle",
            "sleep",
            "--",
            "-l",
            "0",
            "--in-memory",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(s.ip.to_string(), "10.1.0.2/24");
        assert_eq!(s.name, "e1");
        assert_eq!(s.idle, IdleArg::Sleep);
        assert_eq!(s.eal, vec!["-l", "0", "--in-memory"]);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            &["serve", "--ip", "10.1.0.300/24"][..],
            &["serve", "--ip", "10.1.0.2/33"],
            &["serve", "--ip", "10.1.0.2"],
            &["serve", "--ip", "10.1.0.2/24", "--idle", "nap"],
            &["serve", "--ip", "10.1.0.2/24", "--name", "has space"],
            &["serve", "--ip", "10.1.0.2/24", "--port", "80"],
            &["serve"],
            &["fly"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
            assert_eq!(
                run(std::iter::once("migratory").chain(bad.iter().copied())),
                EXIT_USAGE,
                "{bad:?}"
            );
        }
    }
}
