"""`tentacle` (or `python -m tentacle_agent`): modelled on Octopus's Tentacle executable."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

from tentacle_agent import __version__
from tentacle_agent.config import DEFAULT_HOME, DEFAULT_POLLING_PORT, ConfigError, Instance
from tentacle_agent.registration import RegistrationError, ServerApi

# A command imports the modules only it uses (TLS, the script runner, the servers) when it runs: every
# invocation of the agent, `tentacle version` included, starts without them.


class CommandError(Exception):
    pass


def _api_key(args) -> str:
    key = args.apikey or os.environ.get("REEF_API_KEY")
    if not key:
        raise CommandError("An API key is required: --apikey KEY or the REEF_API_KEY environment variable.")
    return key


def cmd_create_instance(args, instance: Instance) -> None:
    if instance.exists and not args.force:
        raise CommandError(f"An instance already exists in {instance.home} (use --force to replace it).")
    config = instance.create(key_bits=args.key_bits)
    print(f"Created an agent instance in {instance.home}. Thumbprint: {config['Thumbprint']}")


def cmd_configure(args, instance: Instance) -> None:
    config = instance.load()
    if args.port is not None:
        if not 0 < args.port < 65536:
            raise CommandError("--port must be from 1 to 65535.")
        config["Port"] = args.port
    if args.listen_ip:
        config["ListenIp"] = args.listen_ip
    if args.polling:
        config["Mode"] = "polling"
    if args.listening:
        config["Mode"] = "listening"
    if args.server_comms_address:
        if urlparse(args.server_comms_address).scheme != "https":
            raise CommandError("--server-comms-address must be an https:// URL.")
        config["ServerCommsAddress"] = args.server_comms_address
    if args.proxy:
        config["Proxy"] = args.proxy
    if args.trust:
        from tentacle_agent.certificates import normalise_thumbprint  # lazy: only this command loads it

        config["TrustedThumbprint"] = normalise_thumbprint(args.trust)
    instance.save(config)
    if args.trust_pem:
        instance.trust(Path(args.trust_pem).read_text(), args.trust)
    print(
        f"Configured: {config['Mode']} mode" + (f" on port {config['Port']}" if config["Mode"] == "listening" else "")
    )


def cmd_new_certificate(args, instance: Instance) -> None:
    thumbprint = instance.replace_certificate(
        key_bits=args.key_bits
    )  # found by mypy: this imported a name that never existed
    print(f"New certificate. Thumbprint: {thumbprint} (update the worker in Reef)")


def cmd_show_thumbprint(args, instance: Instance) -> None:
    print(instance.load()["Thumbprint"])


def cmd_register_worker(args, instance: Instance) -> None:
    """Registering again (an install-script re-run) updates the worker with this agent's thumbprint:
    same id, its pools kept and the requested ones added. The server checks everything before it
    changes anything, in one call, so a refused registration (or --force) leaves every worker as it was."""
    from tentacle_agent.certificates import normalise_thumbprint, thumbprint_of_pem  # lazy: only this command loads it

    if not 0 < args.server_comms_port < 65536:
        raise CommandError("--server-comms-port must be from 1 to 65535.")
    config = instance.load()
    api = ServerApi(args.server, _api_key(args))
    certificate = api.server_certificate()
    expected = args.server_thumbprint or config.get("TrustedThumbprint")
    if expected and thumbprint_of_pem(certificate["CertificatePem"]) != normalise_thumbprint(expected):
        raise CommandError(
            f"The server's certificate is {certificate['Thumbprint']}, "
            f"not the trusted {normalise_thumbprint(expected)}: refusing to register."
        )
    space = api.space(args.space)
    pools = api.pool_ids(space["Id"], args.workerpool)
    policy = api.policy_id(space["Id"], args.machine_policy) if args.machine_policy else None
    name = args.name or socket.gethostname()
    if args.comms_style == "TentacleActive":
        uri = f"poll://{config['Subscription']}/"
        host = urlparse(args.server).hostname or ""
        comms = args.server_comms_address or f"https://{f'[{host}]' if ':' in host else host}:{args.server_comms_port}/"
    else:
        uri = f"https://{args.public_hostname or socket.getfqdn()}:{config.get('Port') or 10933}/"
        comms = config.get("ServerCommsAddress")
    body = {
        "Name": name,
        "WorkerPoolIds": pools,
        "MachinePolicyId": policy,
        "Force": bool(args.force),
        "Endpoint": {"CommunicationStyle": args.comms_style, "Uri": uri, "Thumbprint": config["Thumbprint"]},
    }
    worker, created = api.register_worker(space["Id"], body)
    instance.trust(certificate["CertificatePem"], expected)
    config = instance.load()
    config.update(
        Mode="polling" if args.comms_style == "TentacleActive" else "listening",
        ServerUrl=args.server.rstrip("/"),
        ServerCommsAddress=comms,
        WorkerId=worker["Id"],
        SpaceId=space["Id"],
        WorkerName=name,
    )
    instance.save(config)
    pool_names = ", ".join(args.workerpool)
    if created:
        print(f"Registered {name} as {worker['Id']} in {space['Name']} ({pool_names}).")
    else:
        print(
            f"Registered {name} again: the same worker {worker['Id']} in {space['Name']}, its pools, policy and "
            f"permissions kept, and in {pool_names}."
        )


def cmd_deregister_worker(args, instance: Instance) -> None:
    config = instance.load()
    api = ServerApi(args.server or config.get("ServerUrl") or "", _api_key(args))
    space_id = config.get("SpaceId") or api.space(None)["Id"]
    workers = api.workers_with_thumbprint(space_id, config["Thumbprint"])
    if not workers:
        raise CommandError("No worker with this agent's thumbprint is registered.")
    for worker in workers:
        api.request("DELETE", f"/api/{space_id}/workers/{worker['Id']}")
        print(f"Deregistered {worker['Name']} ({worker['Id']}).")
    config.update(WorkerId=None)
    instance.save(config)


def cmd_run(args, instance: Instance) -> None:
    from tentacle_agent.service import ScriptService  # lazy: only this command loads it

    config = instance.load()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    service = ScriptService(
        instance.home, package_limit_bytes=int(config.get("PackageCacheLimitBytes") or 5 * 1024**3), subreaper=True
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if config["Mode"] == "polling":
            from tentacle_agent.polling import PollingClient  # lazy: only this command loads it

            worker = threading.Thread(target=PollingClient(instance, config, service).run, args=(stop,), daemon=True)
            worker.start()
            stop.wait()
        else:
            from tentacle_agent.listening import serve  # lazy: only this command loads it

            serve(instance, config, service, stop)
    finally:
        service.runner.cancel_all()


def cmd_stdio(args, instance: Instance) -> None:
    from tentacle_agent.service import ScriptService  # lazy: only this command loads it
    from tentacle_agent.stdio import serve_stdio  # lazy: only this command loads it

    instance.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    serve_stdio(ScriptService(instance.home, subreaper=True))


def cmd_ssh_relay(args, instance: Instance) -> None:
    from tentacle_agent.sshrelay import relay  # lazy: only this command loads it

    code = relay(instance.home, args.idle_seconds)
    if code:
        raise SystemExit(code)


def cmd_version(args, instance: Instance) -> None:
    print(__version__)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="tentacle", description="Reef's worker agent.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, handler, help_text):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--home", type=Path, default=DEFAULT_HOME, help=f"instance folder (default {DEFAULT_HOME})")
        sub.set_defaults(handler=handler)
        return sub

    sub = command("create-instance", cmd_create_instance, "create an instance: configuration and certificate")
    sub.add_argument("--force", action="store_true")
    sub.add_argument("--key-bits", type=int, default=2048, help=argparse.SUPPRESS)
    sub = command("configure", cmd_configure, "change the instance's configuration")
    sub.add_argument("--port", type=int)
    sub.add_argument("--listen-ip")
    mode = sub.add_mutually_exclusive_group()
    mode.add_argument("--polling", action="store_true")
    mode.add_argument("--listening", action="store_true")
    sub.add_argument("--trust", metavar="THUMBPRINT", help="the Reef server's certificate thumbprint")
    sub.add_argument("--trust-pem", metavar="FILE", help="the Reef server's certificate, for offline set-up")
    sub.add_argument("--server-comms-address", metavar="URL", help="the server's polling endpoint, https://HOST:10943/")
    sub.add_argument("--proxy", metavar="URL", help="an HTTP proxy for polling, http://HOST:PORT")
    sub = command("new-certificate", cmd_new_certificate, "replace the instance's certificate")
    sub.add_argument("--key-bits", type=int, default=2048, help=argparse.SUPPRESS)
    command("show-thumbprint", cmd_show_thumbprint, "print the instance's certificate thumbprint")
    sub = command("register-worker", cmd_register_worker, "register this machine as a worker")
    sub.add_argument("--server", required=True, metavar="URL")
    sub.add_argument("--apikey", metavar="KEY", help="or the REEF_API_KEY environment variable (keeps it out of ps)")
    sub.add_argument("--comms-style", required=True, choices=["TentaclePassive", "TentacleActive"])
    sub.add_argument("--workerpool", required=True, action="append", metavar="NAME")
    sub.add_argument("--space", metavar="NAME")
    sub.add_argument("--name", metavar="NAME")
    sub.add_argument("--public-hostname", metavar="HOST")
    sub.add_argument("--server-thumbprint", metavar="THUMBPRINT")
    sub.add_argument("--machine-policy", metavar="NAME")
    sub.add_argument("--server-comms-address", metavar="URL")
    sub.add_argument(
        "--server-comms-port",
        type=int,
        default=DEFAULT_POLLING_PORT,
        metavar="PORT",
        help="polling: the server's polling port when --server-comms-address is not given "
        f"(default {DEFAULT_POLLING_PORT})",
    )
    sub.add_argument(
        "--force", action="store_true", help="take over a worker of the same name registered with another certificate"
    )
    sub = command("deregister-worker", cmd_deregister_worker, "remove this machine's worker from Reef")
    sub.add_argument("--server", metavar="URL")
    sub.add_argument("--apikey", metavar="KEY")
    command("run", cmd_run, "run the agent in the foreground")
    command("stdio", cmd_stdio, "serve the script service on stdin/stdout (used by SSH workers)")
    sub = command(
        "ssh-relay", cmd_ssh_relay, "relay stdin/stdout to this home's script service daemon (used by SSH workers)"
    )
    sub.add_argument("--idle-seconds", type=float, default=300, help="the daemon exits after this long unused")
    command("version", cmd_version, "print the agent's version")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.handler(args, Instance(args.home))
    except (CommandError, ConfigError, RegistrationError) as error:
        print(f"tentacle {args.command}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"tentacle {args.command}: {error}", file=sys.stderr)
        return 1
    return 0
