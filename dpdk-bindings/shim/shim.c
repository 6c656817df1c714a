/* See shim.h. Each function is a thin wrapper; no logic lives here. */
#include "shim.h"

#include <stddef.h>

int mgr_errno(void) { return rte_errno; }
unsigned mgr_lcore_id(void) { return rte_lcore_id(); }
uint64_t mgr_rdtsc(void) { return rte_rdtsc(); }
void mgr_pause(void) { rte_pause(); }
int mgr_epoll_per_thread(void) { return RTE_EPOLL_PER_THREAD; }
const char *mgr_version(void) { return rte_version(); }
/* RSS hash types for TCP over IPv4 (the RTE_ETH_RSS_* macros use RTE_BIT64). */
uint64_t mgr_rss_tcp_ipv4(void) { return RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP; }

uint16_t mgr_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t mgr_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *mgr_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int mgr_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{
    return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void mgr_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void mgr_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n) { rte_pktmbuf_free_bulk(mbufs, n); }

void *mgr_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

char *mgr_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

char *mgr_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }

int mgr_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }

uint16_t mgr_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }

uint16_t mgr_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

unsigned mgr_mempool_avail(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }

unsigned mgr_mempool_in_use(const struct rte_mempool *mp) { return rte_mempool_in_use_count(mp); }

void mgr_mbuf_layout(struct mgr_mbuf_layout *out)
{
    out->size = sizeof(struct rte_mbuf);
    out->align = _Alignof(struct rte_mbuf);
    out->buf_addr = offsetof(struct rte_mbuf, buf_addr);
    out->data_off = offsetof(struct rte_mbuf, data_off);
    out->refcnt = offsetof(struct rte_mbuf, refcnt);
    out->nb_segs = offsetof(struct rte_mbuf, nb_segs);
    out->port = offsetof(struct rte_mbuf, port);
    out->ol_flags = offsetof(struct rte_mbuf, ol_flags);
    out->pkt_len = offsetof(struct rte_mbuf, pkt_len);
    out->data_len = offsetof(struct rte_mbuf, data_len);
    out->vlan_tci = offsetof(struct rte_mbuf, vlan_tci);
    out->buf_len = offsetof(struct rte_mbuf, buf_len);
    out->pool = offsetof(struct rte_mbuf, pool);
    out->next = offsetof(struct rte_mbuf, next);
}
