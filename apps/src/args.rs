//! The arguments of the `migratory` command line: what `serve` and `ctl` take, as clap
//! types shared by the command line, the server and the applications (a module of its
//! own so that none of them depends on another for its arguments). Scripts and users rely
//! on these names: extend them, do not rename them. Owns no behaviour beyond parsing and
//! validating values.
use clap::{Subcommand, ValueEnum};
use engine::poll::IdleStrategy;
use engine::wire::ipv4::Ipv4Cidr;

/// Exit code for bad arguments and set-up problems.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a failure after start-up.
pub const EXIT_FAILURE: i32 = 1;

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

#[derive(Debug, Clone, Subcommand)]
pub enum CtlCommand {
    /// Counters of every core and their total (migrations and their latencies included).
    Stats,
    /// The engine's connections: id (stable across moves), 4-tuple, state, core, bytes
    /// queued.
    Conns,
    /// Moves live connections to another core of the engine, or to a peer engine (their
    /// clients notice nothing).
    Migrate(MigrateArgs),
    /// Takes the engine out of service without a connection lost: moves every connection
    /// to a peer engine, forwards what still arrives there, and hands the engine's address
    /// over (the peer announces it); the engine can then be stopped.
    Drain(DrainArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct DrainArgs {
    /// The peer engine that takes over (a name given to `serve --peer`).
    #[arg(long, value_name = "PEER", value_parser = parse_name)]
    pub to: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// The connection to move, by the id `conns` shows.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub conn: Option<String>,
    /// Every connection of the engine (those on the destination core stay).
    #[arg(long)]
    pub all: bool,
    /// The destination core (0 ..< --cores).
    #[arg(
        long,
        value_name = "K",
        required_unless_present = "to",
        conflicts_with = "to"
    )]
    pub to_core: Option<u16>,
    /// The destination engine: a peer named with `serve --peer`.
    #[arg(long, value_name = "PEER", value_parser = parse_name)]
    pub to: Option<String>,
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
    /// `--app echo` only, for measurements: each connection carries this many bytes of
    /// application state, which moves with it when it migrates (at most 1 MiB).
    #[arg(long, value_name = "BYTES", default_value_t = 0, requires = "app",
          value_parser = clap::value_parser!(u32).range(0..=1_048_000))]
    pub app_state_bytes: u32,
    /// Cores (lcores) to run, each with its own queue pair; flows are spread over them
    /// and frames reaching the wrong core are handed to their owner.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=128))]
    pub cores: u16,
    /// Connections each core holds at most (TIME-WAIT records and half-open connections
    /// not counted); SYNs beyond it are answered with a RST and counted as table_full.
    /// Memory is taken as connections come, not up front.
    #[arg(long, value_name = "N", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub max_connections: u32,
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
    /// Joins a cluster: the state channel listens on this address (the engine's own) and
    /// port, carried on the engine's own TCP. Needs --peer and --cluster-key-file.
    #[arg(long, value_name = "ADDR:PORT", requires_all = ["peers", "cluster_key_file"])]
    pub channel: Option<std::net::SocketAddrV4>,
    /// A peer engine of the cluster, by the name it serves with and its channel
    /// endpoint; repeat for each peer.
    #[arg(long = "peer", value_name = "NAME=ADDR:PORT", value_parser = parse_peer, requires = "channel")]
    pub peers: Vec<(String, std::net::SocketAddrV4)>,
    /// A peer (named with --peer) on this host, joined by a shared-memory link instead
    /// of the network: FILE (under /dev/shm) is the link, created by whichever of the two
    /// engines starts first; give both engines the same FILE. Repeat for each such peer.
    #[arg(long = "peer-shm", value_name = "NAME=FILE", value_parser = parse_peer_shm, requires = "channel")]
    pub peer_shm: Vec<(String, std::path::PathBuf)>,
    /// The cluster's shared secret (at least 32 bytes; the file must not be readable by
    /// group or others): every channel message is authenticated with it.
    #[arg(long, value_name = "FILE", requires = "channel")]
    pub cluster_key_file: Option<std::path::PathBuf>,
    /// Arguments for DPDK's EAL, after `--`, e.g. `-l 0 --in-memory --vdev=net_tap0,iface=mg0`.
    #[arg(last = true, value_name = "EAL-ARGS")]
    pub eal: Vec<String>,
}

fn parse_cidr(s: &str) -> Result<Ipv4Cidr, String> {
    s.parse::<Ipv4Cidr>().map_err(|e| e.to_string())
}

fn parse_peer(s: &str) -> Result<(String, std::net::SocketAddrV4), String> {
    let (name, addr) = s
        .split_once('=')
        .ok_or_else(|| "expected NAME=ADDR:PORT".to_string())?;
    let name = parse_name(name)?;
    let addr = addr
        .parse::<std::net::SocketAddrV4>()
        .map_err(|_| format!("{addr:?} is not ADDR:PORT"))?;
    Ok((name, addr))
}

fn parse_peer_shm(s: &str) -> Result<(String, std::path::PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| "expected NAME=FILE".to_string())?;
    if path.is_empty() {
        return Err("expected NAME=FILE".into());
    }
    Ok((parse_name(name)?, path.into()))
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
