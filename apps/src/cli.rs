//! The `migratory` command line. Scripts and users rely on these names: extend them,
//! do not rename them.
//!
//! ```text
//! migratory serve --ip ADDR/PREFIX [--name NAME] [--idle interrupt|sleep|spin]
//!                 [--app NAME --port N] [--root DIR] [--device DPDK-PORT-NAME]
//!                 [--channel ADDR:PORT --peer NAME=ADDR:PORT... --cluster-key-file FILE]
//!                 -- EAL-ARGS
//! migratory ctl --name NAME stats|conns
//! migratory ctl --name NAME migrate (--conn ID | --all) (--to-core K | --to PEER)
//! migratory ctl --name NAME drain --to PEER
//! ```
//! Exit codes: 0 clean stop, 1 failure while running, 2 bad arguments or set-up.
use clap::{Parser, Subcommand};

pub use crate::args::{AppName, CtlArgs, CtlCommand, IdleArg, ServeArgs, EXIT_FAILURE, EXIT_USAGE};
use crate::serve;

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
    let command = match &args.command {
        CtlCommand::Stats => "stats".to_string(),
        CtlCommand::Conns => "conns".to_string(),
        CtlCommand::Migrate(m) => {
            let which = m.conn.as_deref().unwrap_or("all");
            match (&m.to, m.to_core) {
                (Some(peer), _) => format!("migrate-peer {which} {peer}"),
                (None, Some(core)) => format!("migrate {which} {core}"),
                // clap requires one of the two.
                (None, None) => format!("migrate {which} -"),
            }
        }
        CtlCommand::Drain(d) => format!("drain {}", d.to),
    };
    match crate::ctl::request(&args.ctl_dir, &args.name, &command) {
        // An answer that says the command could not run: one line, usage-class exit.
        Ok(v)
            if v.get("usage").is_some()
                || (v.get("error").is_some()
                    && !matches!(args.command, CtlCommand::Migrate(_) | CtlCommand::Drain(_))) =>
        {
            if args.json {
                println!("{v}");
            }
            eprintln!(
                "migratory: {}",
                v["error"]
                    .as_str()
                    .unwrap_or("the engine refused the command")
            );
            EXIT_USAGE
        }
        Ok(v) if args.json => {
            println!("{v}");
            crate::ctl::exit_code(&v)
        }
        Ok(v) => {
            let text = match args.command {
                CtlCommand::Stats => crate::ctl::render_stats(&v),
                CtlCommand::Conns => crate::ctl::render_conns(&v),
                CtlCommand::Migrate(_) | CtlCommand::Drain(_) => crate::ctl::render_moves(&v),
            };
            print!("{text}");
            if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
                eprintln!("migratory: {e}");
            }
            crate::ctl::exit_code(&v)
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
            // The message's first paragraph, on one line: clap lists missing arguments
            // on the lines under its first.
            let first = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let first = if first.is_empty() {
                "error: bad arguments".to_string()
            } else {
                first
            };
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
