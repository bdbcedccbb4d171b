"""Least privilege on the local stack (issue 17): every listening socket on loopback, each process with only the
secrets it uses, no secret on any command line, and a dashboard role that can read and do nothing else."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import psycopg
import pytest
from pydantic import BaseModel, SecretStr

from runtime import clients
from stack.processes import owned

LISTEN = "0A"  # the TCP state "listen" in /proc/net/tcp{,6}


def listening_sockets() -> dict[int, str]:
    """Every listening TCP socket of this machine: its inode -> "address:port" (what `ss -ltn` lists), read
    from /proc so that the check needs no tool the machine may lack."""
    found = {}
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / table
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            address_hex, port_hex = fields[1].split(":")
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            raw = b"".join(int(address_hex[i:i + 8], 16).to_bytes(4, "little") for i in range(0, len(address_hex), 8))
            found[int(fields[9])] = f"{ipaddress.ip_address(socket.inet_ntop(family, raw))}:{int(port_hex, 16)}"
    return found


def sockets_of(pids) -> dict[str, int]:
    """The listening sockets held by these processes: "address:port" -> pid."""
    listening = listening_sockets()
    held = {}
    for pid in pids:
        try:
            links = [os.readlink(entry) for entry in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:  # gone, or not ours to read
            continue
        for link in links:
            if link.startswith("socket:[") and (inode := int(link[8:-1])) in listening:
                held[listening[inode]] = pid
    return held


def process_tree(root: int) -> set[int]:
    """`root` and every process descended from it."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):
            continue
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree, grew = tree | children, bool(children)
    return tree


def on_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rsplit(":", 1)[0])
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


def secrets_of(settings) -> dict[str, str]:
    """Every secret of the settings by its environment name (STREAMPULSE_POSTGRES__ADMIN_PASSWORD -> value)."""
    found = {}

    def walk(model: BaseModel, path: list[str]) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr) and len(value.get_secret_value()) >= 8:
                found["STREAMPULSE_" + "__".join([*path, name]).upper()] = value.get_secret_value()
            elif isinstance(value, BaseModel):
                walk(value, [*path, name])

    walk(settings, [])
    return found


def stack_processes(settings) -> dict[int, str]:
    processes = owned(settings.stack.state_path / "run")
    assert {"postgres", "redis", "minio", "kafka", "prometheus"} <= set(processes.values()), processes
    return processes


def test_every_socket_of_the_stack_listens_on_loopback(settings):
    held = sockets_of(stack_processes(settings))
    assert held, "no listening socket found for the stack's processes"
    exposed = {address: pid for address, pid in held.items() if not on_loopback(address)}
    assert exposed == {}, f"stack sockets on a non-loopback address: {exposed}"


def test_each_stack_process_holds_only_the_secrets_it_uses(settings):
    secrets = secrets_of(settings)
    assert "STREAMPULSE_POSTGRES__ADMIN_PASSWORD" in secrets and "STREAMPULSE_MINIO__SECRET_KEY" in secrets
    # MinIO's root credentials are MinIO's own (MINIO_ROOT_USER / MINIO_ROOT_PASSWORD), the registry's database
    # password its own (APICURIO_DATASOURCE_PASSWORD); nobody else's.
    allowed = {"minio": {"STREAMPULSE_MINIO__ACCESS_KEY", "STREAMPULSE_MINIO__SECRET_KEY"},
               "registry": {"STREAMPULSE_REGISTRY__DB_PASSWORD"}}
    for pid, name in stack_processes(settings).items():
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        held = {key for key, value in secrets.items() if value in environment}
        assert held <= allowed.get(name, set()), f"{name} (pid {pid}) holds {sorted(held - allowed.get(name, set()))}"


def test_no_secret_appears_on_any_command_line(settings):
    secrets = secrets_of(settings)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        shown = sorted(key for key, value in secrets.items() if value in argv)
        assert not shown, f"pid {entry.name} shows {shown} in its arguments: {argv.replace(chr(0), ' ')[:200]}"


def test_the_dashboard_role_reads_and_can_do_nothing_else(settings):
    with clients.postgres(settings, "reader") as reader:
        assert reader.execute("SELECT count(*) FROM trends").fetchone()[0] >= 0
        assert reader.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        timeout = reader.execute("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'").fetchone()[0]
        assert 0 < timeout <= 60_000  # ms
        # Large objects are written to pg_largeobject, which no table grant covers: refused by privilege.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT lo_from_bytea(0, 'x'::bytea)")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            reader.execute("CREATE TEMP TABLE reader_scratch (x int)")
        # A session may turn read-only off; the grants still hold.
        reader.execute("SET default_transaction_read_only = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="temporary tables"):
            reader.execute("CREATE TEMP TABLE reader_scratch (x int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT lo_from_bytea(0, 'x'::bytea)")
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            reader.execute("SELECT pg_sleep(%s)", (timeout / 1000 + 1,))
