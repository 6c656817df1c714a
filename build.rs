//! Fails early, with a one-line fix, when the system DPDK is missing or too old.
use std::process::Command;

const MIN: (u32, u32) = (22, 11);

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let out = Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output();
    let version = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(_) => fail("libdpdk not found by pkg-config"),
        Err(_) => fail("pkg-config is not installed"),
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if v < MIN {
        fail(&format!(
            "libdpdk {version} is too old (need >= {}.{})",
            MIN.0, MIN.1
        ));
    }
}

fn fail(what: &str) -> ! {
    eprintln!("error: {what}; fix: run `sudo ci/setup` (installs dpdk-dev, libdpdk-dev, pkg-config, libclang-dev)");
    std::process::exit(1);
}
