//! Checks made before DPDK starts, so that the usual set-up mistakes end in one clear
//! line instead of pages of EAL output.
use std::fs;
use std::path::Path;

use dpdk_sys::EalArgs;

/// A set-up problem found before starting DPDK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreflightError {
    #[error("tap interface {0:?} already exists (another engine uses it?): pick another iface= name or remove it with `ip link del {0}`")]
    TapInUse(String),
    #[error("tap interface name {0:?} is invalid: use 1-15 characters from [A-Za-z0-9_.-]")]
    BadTapName(String),
    #[error("no free hugepages: reserve some with `echo 512 > /proc/sys/vm/nr_hugepages`, or pass --no-huge to EAL")]
    NoHugepages,
    #[error("hugetlbfs is not mounted: `mount -t hugetlbfs nodev /dev/hugepages`, or pass --in-memory or --no-huge to EAL")]
    NoHugetlbfs,
    #[error("--no-huge and --in-memory cannot be combined (DPDK rejects it): use --no-huge --file-prefix=NAME")]
    NoHugeInMemory,
}

/// The `iface=` names of every `net_tap` vdev in the EAL arguments.
pub fn tap_names(eal: &EalArgs) -> Vec<String> {
    eal.values("--vdev")
        .into_iter()
        .filter(|v| v.starts_with("net_tap"))
        .filter_map(|v| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix("iface="))
                .map(str::to_owned)
        })
        .collect()
}

/// Refuses tap names that exist already: a second DPDK process with the same name
/// silently joins the first one's device and takes its link down when it exits.
pub fn check_taps(eal: &EalArgs, sys_class_net: &Path) -> Result<(), PreflightError> {
    for name in tap_names(eal) {
        let valid = !name.is_empty()
            && name.len() <= 15
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            return Err(PreflightError::BadTapName(name));
        }
        if sys_class_net.join(&name).exists() {
            return Err(PreflightError::TapInUse(name));
        }
    }
    Ok(())
}

/// Free hugepages of the default size, from /proc/meminfo.
fn free_hugepages(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Refuses EAL arguments that need hugepages when the machine has none to give.
pub fn check_hugepages(eal: &EalArgs, meminfo: &str, mounts: &str) -> Result<(), PreflightError> {
    if eal.has("--no-huge") {
        if eal.has("--in-memory") {
            return Err(PreflightError::NoHugeInMemory);
        }
        return Ok(());
    }
    if free_hugepages(meminfo) == 0 {
        return Err(PreflightError::NoHugepages);
    }
    let mounted = mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"));
    if !eal.has("--in-memory") && !mounted {
        return Err(PreflightError::NoHugetlbfs);
    }
    Ok(())
}

/// Every check, against the running system.
pub fn check_all(eal: &EalArgs) -> Result<(), PreflightError> {
    check_taps(eal, Path::new("/sys/class/net"))?;
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    check_hugepages(eal, &meminfo, &mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tap_names() {
        let eal = EalArgs::new([
            "--vdev=net_tap0,iface=mg0",
            "--vdev",
            "net_memif0,role=server",
            "--vdev=net_tap1",
        ]);
        assert_eq!(tap_names(&eal), vec!["mg0".to_string()]);
    }

    #[test]
    fn refuses_existing_or_bad_tap() {
        let dir = std::env::temp_dir().join(format!("mg-sysnet-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("busy0")).unwrap();
        let busy = EalArgs::new(["--vdev=net_tap0,iface=busy0"]);
        assert_eq!(
            check_taps(&busy, &dir),
            Err(PreflightError::TapInUse("busy0".into()))
        );
        let free = EalArgs::new(["--vdev=net_tap0,iface=free0"]);
        assert_eq!(check_taps(&free, &dir), Ok(()));
        let bad = EalArgs::new(["--vdev=net_tap0,iface=a/b"]);
        assert_eq!(
            check_taps(&bad, &dir),
            Err(PreflightError::BadTapName("a/b".into()))
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hugepage_rules() {
        let none = "HugePages_Total:       0\nHugePages_Free:        0\n";
        let some = "HugePages_Total:     512\nHugePages_Free:      500\n";
        let mounted = "nodev /dev/hugepages hugetlbfs rw 0 0\n";
        let huge = EalArgs::new(["-l", "0"]);
        assert_eq!(
            check_hugepages(&huge, none, mounted),
            Err(PreflightError::NoHugepages)
        );
        assert_eq!(
            check_hugepages(&huge, some, ""),
            Err(PreflightError::NoHugetlbfs)
        );
        assert_eq!(check_hugepages(&huge, some, mounted), Ok(()));
        let mem = EalArgs::new(["--in-memory"]);
        assert_eq!(check_hugepages(&mem, some, ""), Ok(()));
        let nohuge = EalArgs::new(["--no-huge", "--file-prefix=x"]);
        assert_eq!(check_hugepages(&nohuge, none, ""), Ok(()));
        let both = EalArgs::new(["--no-huge", "--in-memory"]);
        assert_eq!(
            check_hugepages(&both, none, ""),
            Err(PreflightError::NoHugeInMemory)
        );
    }
}
