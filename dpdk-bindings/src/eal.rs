//! `Eal`: DPDK's Environment Abstraction Layer, initialised once per process.
use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{check, DpdkError, Result};
use crate::ffi;

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// EAL command-line arguments, checked before they reach DPDK.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EalArgs {
    args: Vec<String>,
}

impl EalArgs {
    /// Arguments as they would follow the program name on a DPDK command line.
    pub fn new<I, S>(args: I) -> EalArgs
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EalArgs {
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    pub fn as_slice(&self) -> &[String] {
        &self.args
    }

    /// Whether the value of option `name` (given as `--name=V` or `--name V`) is present,
    /// returning every value given.
    pub fn values(&self, name: &str) -> Vec<&str> {
        let eq = format!("{name}=");
        let mut out = Vec::new();
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if let Some(v) = a.strip_prefix(&eq) {
                out.push(v);
            } else if a == name {
                if let Some(v) = it.next() {
                    out.push(v.as_str());
                }
            }
        }
        out
    }

    /// Whether flag `name` is present.
    pub fn has(&self, name: &str) -> bool {
        let eq = format!("{name}=");
        self.args.iter().any(|a| a == name || a.starts_with(&eq))
    }

    /// Whether the arguments keep this process apart from other DPDK processes.
    pub fn has_private_prefix(&self) -> bool {
        self.has("--in-memory") || self.has("--file-prefix")
    }

    /// Whether EAL will want hugepages.
    pub fn needs_hugepages(&self) -> bool {
        !self.has("--no-huge")
    }
}

/// The initialised EAL. Dropping it calls `rte_eal_cleanup`; EAL cannot be initialised a
/// second time in the same process, even after that.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises EAL with `args` (program name excluded). Refuses arguments without a
    /// private `--file-prefix` or `--in-memory`, and a second init in the same process.
    pub fn init(args: &EalArgs) -> Result<Eal> {
        if !args.has_private_prefix() {
            return Err(DpdkError::NoFilePrefix);
        }
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyInitialised);
        }
        let mut owned = Vec::with_capacity(args.args.len() + 1);
        owned.push(CString::new("migratory").expect("literal has no NUL"));
        for a in &args.args {
            owned.push(CString::new(a.as_str()).map_err(|_| DpdkError::BadArgument(a.clone()))?);
        }
        // rte_eal_init may permute argv; give it pointers into storage we keep alive.
        let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        let argc = argv.len() as i32;
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call
        // (EAL copies what it keeps); INITIALISED guarantees one call per process.
        let ret = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        Ok(Eal { _private: () })
    }

    /// The worker lcores (every enabled lcore except the main one).
    pub fn workers(&self) -> Vec<u32> {
        self.lcores().into_iter().skip(1).collect()
    }

    /// The lcores EAL enabled, main lcore first.
    pub fn lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        // SAFETY: EAL is initialised; these only read its lcore configuration.
        unsafe {
            let main = ffi::rte_get_main_lcore();
            out.push(main);
            let mut i = ffi::rte_get_next_lcore(u32::MAX, 1, 0);
            while i < ffi::RTE_MAX_LCORE {
                out.push(i);
                i = ffi::rte_get_next_lcore(i, 1, 0);
            }
        }
        out
    }

    /// The number of usable ethdev ports.
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised.
        unsafe { ffi::rte_eth_dev_count_avail() }
    }

    /// Runs `f` on worker lcore `lcore` (not the main lcore), which must be idle. The
    /// returned handle's [`Lcore::join`] waits for it. A panic in `f` is caught on the
    /// lcore and reported as exit code -1 (unwinding into C would be undefined).
    pub fn launch<F>(&self, lcore: u32, f: F) -> Result<Lcore>
    where
        F: FnOnce() -> i32 + Send + 'static,
    {
        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job).cast::<std::ffi::c_void>();
        // SAFETY: `trampoline` takes back ownership of `arg` exactly once when the lcore
        // runs it; if the launch fails we take it back here instead.
        let ret = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if ret < 0 {
            // SAFETY: the launch failed, so the trampoline never saw `arg`.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(DpdkError::from_ret("rte_eal_remote_launch", ret));
        }
        Ok(Lcore { id: lcore })
    }

    /// The NUMA socket of the calling thread.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: EAL is initialised; reads a thread-local.
        unsafe { ffi::rte_socket_id() as i32 }
    }
}

type Job = Box<dyn FnOnce() -> i32 + Send>;

extern "C" fn trampoline(arg: *mut std::ffi::c_void) -> i32 {
    // SAFETY: `arg` came from Box::into_raw in `Eal::launch` and is consumed once here.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(-1)
}

/// A worker lcore running a job launched by [`Eal::launch`].
#[derive(Debug)]
#[must_use = "join the lcore to wait for its job"]
pub struct Lcore {
    id: u32,
}

impl Lcore {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Waits for the job to finish and returns its exit code.
    pub fn join(self) -> i32 {
        // SAFETY: waits on a worker lcore we launched; no memory is shared through it.
        unsafe { ffi::rte_eal_wait_lcore(self.id) }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by this value; every port and pool user has ended
        // (they borrow nothing from Eal, but the binary drops Eal last).
        let ret = unsafe { ffi::rte_eal_cleanup() };
        let _ = check("rte_eal_cleanup", ret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_option_values() {
        let a = EalArgs::new([
            "-l",
            "0",
            "--vdev=net_tap0,iface=t0",
            "--vdev",
            "net_tap1",
            "--in-memory",
        ]);
        assert_eq!(a.values("--vdev"), vec!["net_tap0,iface=t0", "net_tap1"]);
        assert!(a.has_private_prefix());
        assert!(a.needs_hugepages());
        let b = EalArgs::new(["--no-huge", "-l", "0"]);
        assert!(!b.has_private_prefix());
        assert!(!b.needs_hugepages());
    }

    #[test]
    fn refuses_shared_prefix() {
        let a = EalArgs::new(["--no-huge", "-l", "0"]);
        assert_eq!(Eal::init(&a).unwrap_err(), DpdkError::NoFilePrefix);
    }
}
