//! Generates the DPDK bindings with bindgen and compiles the C shim, both with every
//! token of `pkg-config --cflags libdpdk` (dropping `-march` breaks the shim's inlines,
//! dropping the arch include dir loses rte_config.h), and links each `-l` of
//! `pkg-config --libs libdpdk` as a dylib. PMDs are plugins EAL loads by itself.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(arg: &str) -> Vec<String> {
    let out = match Command::new("pkg-config").args([arg, "libdpdk"]).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => fail(&format!(
            "pkg-config {arg} libdpdk failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => fail(&format!("cannot run pkg-config: {e}")),
    };
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn fail(what: &str) -> ! {
    eprintln!("error: {what}; fix: run `sudo ci/setup` (installs dpdk-dev, libdpdk-dev, pkg-config, libclang-dev)");
    std::process::exit(1);
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let cflags = pkg_config("--cflags");
    let libs = pkg_config("--libs");

    // The shim: every cflag, in order.
    let mut build = cc::Build::new();
    build
        .file("shim/shim.c")
        .include("shim")
        .opt_level(3)
        .warnings(false);
    for f in &cflags {
        build.flag(f);
    }
    build.compile("migratory_dpdk_shim");

    for tok in &libs {
        if let Some(lib) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        } else if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        }
    }

    let mut builder = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(cflags.iter())
        .clang_arg("-Ishim")
        .allowlist_function("mgr_.*")
        .allowlist_function("rte_eal_(init|cleanup|process_type|has_hugepages|get_configuration|lcore_role|mp_.*)")
        .allowlist_function("rte_lcore_(count|index|to_socket_id|is_enabled)")
        .allowlist_function("rte_get_(main_lcore|next_lcore)")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_eal_(remote_launch|wait_lcore|get_lcore_state)")
        .allowlist_function("rte_thread_(register|unregister)")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_epoll_wait")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_mempool_(free|lookup)")
        .allowlist_function(
            "rte_eth_(dev_count_avail|dev_configure|dev_info_get|rx_queue_setup|tx_queue_setup|dev_start|dev_stop|dev_close|dev_get_port_by_name|dev_get_name_by_port|macaddr_get|link_get_nowait|link_get|stats_get|stats_reset|promiscuous_enable|promiscuous_disable|dev_set_mtu|dev_get_mtu|dev_rx_intr_ctl_q|dev_rx_intr_enable|dev_rx_intr_disable|dev_socket_id|find_next_owned_by|dev_is_valid_port|xstats_get|xstats_get_names|dev_rss_hash_update|dev_rss_hash_conf_get|dev_rss_reta_update)",
        )
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_eth_conf")
        .allowlist_type("rte_eth_dev_info")
        .allowlist_type("rte_eth_stats")
        .allowlist_type("rte_eth_link")
        .allowlist_type("rte_ether_addr")
        .allowlist_type("rte_epoll_event")
        .allowlist_type("rte_eth_rxconf")
        .allowlist_type("rte_eth_txconf")
        .allowlist_type("rte_eth_rss_conf")
        .allowlist_type("mgr_mbuf_layout")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MBUF_.*")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_ETHER_.*")
        .allowlist_var("RTE_INTR_EVENT_.*")
        .allowlist_var("RTE_LCORE_.*")
        .opaque_type("rte_arp_ipv4|rte_arp_hdr")
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false);
    if env::var("DOCS_RS").is_ok() {
        builder = builder.layout_tests(false);
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed: {e}")));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));
}
