/*
 * The C shim of dpdk-sys: DPDK's static inline functions, macros and thread-locals that
 * Rust cannot call directly, wrapped as real functions named mgr_*. bindgen reads this
 * header (which includes the DPDK headers the bindings cover), so the Rust side is
 * generated, not written by hand.
 */
#ifndef MIGRATORY_DPDK_SHIM_H
#define MIGRATORY_DPDK_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_epoll.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_version.h>

/* Thread-locals and macros. */
int mgr_errno(void);
unsigned mgr_lcore_id(void);
uint64_t mgr_rdtsc(void);
void mgr_pause(void);
int mgr_epoll_per_thread(void);
const char *mgr_version(void);
uint64_t mgr_rss_tcp_ipv4(void);

/* ethdev fast path. */
uint16_t mgr_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t mgr_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* mbufs. */
struct rte_mbuf *mgr_pktmbuf_alloc(struct rte_mempool *mp);
int mgr_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void mgr_pktmbuf_free(struct rte_mbuf *m);
void mgr_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n);
void *mgr_pktmbuf_mtod(struct rte_mbuf *m);
char *mgr_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *mgr_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
int mgr_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t mgr_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t mgr_pktmbuf_tailroom(const struct rte_mbuf *m);
unsigned mgr_mempool_avail(const struct rte_mempool *mp);
unsigned mgr_mempool_in_use(const struct rte_mempool *mp);

/* The C view of struct rte_mbuf, for the layout test. */
struct mgr_mbuf_layout {
    size_t size;
    size_t align;
    size_t buf_addr;
    size_t data_off;
    size_t refcnt;
    size_t nb_segs;
    size_t port;
    size_t ol_flags;
    size_t pkt_len;
    size_t data_len;
    size_t vlan_tci;
    size_t buf_len;
    size_t pool;
    size_t next;
};
void mgr_mbuf_layout(struct mgr_mbuf_layout *out);

#endif
