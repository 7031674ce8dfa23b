#!/usr/bin/env python3
"""Capacity model for docs/scaling.md: from the per-connection and per-signal costs measured by
the benchmarks to the fleet that carries a given load. Every input is a flag, so a new
measurement or a new assumption re-runs the arithmetic:

    python3 docs/capacity.py                          # the workload of docs/scaling.md
    python3 docs/capacity.py --users 50000 --calls 5000 --kib-per-socket 14
"""

import argparse
import math


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    # Workload (assumptions; see docs/scaling.md).
    add("--users", type=float, default=1_000_000, help="users connected at once (one socket each)")
    add("--calls", type=float, default=100_000, help="calls in progress at once")
    add("--call-minutes", type=float, default=15, help="mean call length")
    add("--signals-per-call", type=float, default=45, help="setup (SDP, ICE, media) plus renegotiations")
    add("--chat-per-call-minute", type=float, default=2, help="chat messages per call and minute")
    add("--queries-per-user-minute", type=float, default=0.5, help="HTTP GraphQL requests per connected user and minute")
    add("--search-share", type=float, default=0.3, help="share of those requests that are doctor searches")
    add("--reconnect-minutes", type=float, default=30, help="mean time between reconnects of one socket")
    add("--subscriptions", type=float, default=3, help="subscriptions a front end keeps on its socket")
    # Measured on one 2-vCPU instance (docs/performance.md, host B).
    add("--kib-per-socket", type=float, default=15.0, help="resident KiB per idle socket with one subscription (relay bench)")
    add("--kib-per-subscription", type=float, default=4.0, help="resident KiB per further subscription (estimate: about 1 for callEvents or notifications, 7 for one the executor runs)")
    add("--us-per-signal", type=float, default=47.4, help="server CPU per relayed signal, two instances over Redis (relay bench)")
    add("--redis-us-per-signal", type=float, default=12.9, help="Redis CPU per relayed signal (relay bench)")
    add("--us-per-query", type=float, default=500, help="server CPU per ordinary GraphQL request (estimate from the benches)")
    add("--us-per-search", type=float, default=1040, help="server CPU per doctors search, 10,000 doctors, PostgreSQL (doctors bench p50)")
    add("--us-per-call-change", type=float, default=1500, help="server CPU per startCall/answerCall/endCall incl. DB and Redis (estimate)")
    add("--us-per-connect", type=float, default=400, help="server CPU per socket connect + disconnect (estimate)")
    # Instance shape and headroom.
    add("--cores", type=float, default=2)
    add("--memory-gib", type=float, default=4)
    add("--utilisation", type=float, default=0.5, help="target share of CPU and memory in use (room for a lost instance and spikes)")
    return p.parse_args()


def main():
    a = parse()
    seconds_per_call = a.call_minutes * 60
    call_starts = a.calls / seconds_per_call
    signals = call_starts * a.signals_per_call
    chat = a.calls * 2 * a.chat_per_call_minute / 60
    queries = a.users * a.queries_per_user_minute / 60
    searches = queries * a.search_share
    connects = a.users / (a.reconnect_minutes * 60)

    cpu_cores = {
        "signals relayed": signals * a.us_per_signal,
        "call changes (start, answer, end)": call_starts * 3 * a.us_per_call_change,
        "chat messages": chat * a.us_per_query,
        "searches": searches * a.us_per_search,
        "other queries": (queries - searches) * a.us_per_query,
        "socket connects": connects * a.us_per_connect,
    }
    cpu_cores = {k: v / 1e6 for k, v in cpu_cores.items()}
    total_cores = sum(cpu_cores.values())
    kib_per_user = a.kib_per_socket + (a.subscriptions - 1) * a.kib_per_subscription
    socket_gib = a.users * kib_per_user / 2**20

    by_cpu = total_cores / (a.cores * a.utilisation)
    by_memory = socket_gib / (a.memory_gib * a.utilisation)
    instances = max(2, math.ceil(max(by_cpu, by_memory)))

    print(f"workload: {a.users:,.0f} users connected, {a.calls:,.0f} calls in progress")
    print(f"  call starts {call_starts:,.0f}/s, signals {signals:,.0f}/s, chat {chat:,.0f}/s,")
    print(f"  HTTP requests {queries:,.0f}/s (searches {searches:,.0f}/s), socket connects {connects:,.0f}/s")
    print("server CPU, cores in use:")
    for name, cores in cpu_cores.items():
        print(f"  {name:<36} {cores:8.2f}")
    print(f"  {'total':<36} {total_cores:8.2f}")
    print(f"socket memory: {kib_per_user:.1f} KiB per user -> {socket_gib:,.1f} GiB")
    print(f"instances ({a.cores:g} cores, {a.memory_gib:g} GiB, at {a.utilisation:.0%}): "
          f"{by_cpu:.1f} by CPU, {by_memory:.1f} by memory -> {instances}")
    print(f"per instance: {a.users / instances:,.0f} sockets, {signals / instances:,.0f} signals/s")
    redis_ops = signals + chat + call_starts * 6 + connects * 4
    print(f"Redis: about {redis_ops:,.0f} operations/s "
          f"(publishes, presence scripts, subscribe/unsubscribe); signals use "
          f"{signals * a.redis_us_per_signal / 1e6:.2f} of a core")
    writes = call_starts * 3 * 2 + chat
    print(f"PostgreSQL: about {writes:,.0f} writes/s on the primary (calls, chat); "
          f"{searches:,.0f} searches/s can go to replicas")


if __name__ == "__main__":
    main()
