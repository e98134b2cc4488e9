"""`phr connector …` commands: synth, run, link. Attached by launcher/cli.py."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click
from click.decorators import FC
from joserfc.jwk import ECKey

from connectors import pseudonym_keys, run_metrics
from connectors import synth as synth_mod
from connectors.client_key import ClientAssertion, load_signing_key, public_jwk
from connectors.consent import ConsentClient, FileConsent, answer_link_requests
from connectors.http import HttpError, TokenError, TokenSource, TransportError
from connectors.pipeline import Connector, Progress, Report, Summary
from connectors.pseudonym import Pseudonymizer
from connectors.source_registry import SOURCES, detect_source
from connectors.sources.base import UNREADABLE, Problem, unexpected
from connectors.transport import FhirTransport
from phr_core import request_ids, secrets
from phr_core.config import ConfigError, Settings, load_settings
from phr_core.db import Database


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _signing_key(s: Settings) -> ECKey:
    """The connector's private key; production refuses a development key."""
    name = "PHR_CONNECTOR_SIGNING_KEY"
    if s.production:
        problems = secrets.production_problems(name, s.environ, s.var_dir)
        if problems:
            raise click.ClickException("; ".join(problems))
    try:
        return load_signing_key(s.secret(name))
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _tokens(s: Settings, ca_file: str | None, scope: str) -> TokenSource:
    client_id = s.option("PHR_CONNECTOR_CLIENT_ID")
    return TokenSource(
        s.issuer,
        client_id,
        signer=ClientAssertion(client_id, _signing_key(s)),
        scope=scope,
        ca_file=ca_file,
    )


@click.command("jwk")
def jwk() -> None:
    """Print the connector's public JWK (JSON), to register with its client at the IdP
    (`jwks` in PHR_IDP_CLIENTS_FILE, token_endpoint_auth_method private_key_jwt)."""
    click.echo(json.dumps({"keys": [public_jwk(_signing_key(_settings()))]}, indent=2))


@click.command("synth")
@click.option("--residents", "-n", type=click.IntRange(10), default=2000, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write into (default: PHR_CONNECTOR_INBOX).",
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--year", type=int, default=2025, show_default=True)
@click.option(
    "--months",
    type=click.IntRange(1, 12),
    default=12,
    show_default=True,
    help="Months of NHI claims to write.",
)
@click.option("--consent-share", type=click.FloatRange(0, 1), default=0.25, show_default=True)
def synth(
    residents: int, out: Path | None, seed: int, year: int, months: int, consent_share: float
) -> None:
    """Write a synthetic city's exports: register, MCH, vaccinations, UKE claims, consents.

    Deterministic for the same N, seed and pseudonym key. Everything is made up."""
    s = _settings()
    target = out or Path(s.option("PHR_CONNECTOR_INBOX"))
    files = synth_mod.generate(
        residents,
        target,
        s.secret("PHR_CONNECTOR_PSEUDONYM_KEY"),
        seed=seed,
        year=year,
        months=months,
        consent_share=consent_share,
    )
    n_claims = len(files["claims"])  # type: ignore[arg-type]  # synth's claims entry is a list
    click.echo(
        f"wrote register, mch, vaccination, {n_claims} UKE files and consents.json to {target}"
    )


@click.command("run")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--register",
    "register_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Resident-register export (default: register.csv in the inbox, if present).",
)
@click.option(
    "--consent-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Consented codes per category as JSON (offline); default: ask the consent service.",
)
@click.option("--dry-run", is_flag=True, help="Parse, gate, map and validate; send nothing.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write rejected rows (CSV: file,line,field,reason).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 5000),
    default=500,
    show_default=True,
    help="Resources per transaction Bundle.",
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="Transactions in flight at once (the PHR server runs several workers).",
)
@click.option(
    "--local-validation/--no-local-validation",
    default=False,
    show_default=True,
    help="Also run the connector's own R4B check when sending. Off by default: the PHR server "
    "validates every resource it stores, and the rows it refuses are isolated and reported "
    "(file, line, the server's issue codes) all the same; the local check doubled that work "
    "(about 40% of the connector's CPU). --dry-run always validates.",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CA certificates to verify the servers' TLS with (default: system store).",
)
@click.option("--scope", default="system/*.cu", show_default=True, help="Scope asked of the IdP.")
@click.option(
    "--full",
    is_flag=True,
    help="Send every consented row again, even those the server acknowledged unchanged before.",
)
def run(
    files: tuple[Path, ...],
    register_path: Path | None,
    consent_file: Path | None,
    dry_run: bool,
    report: Path | None,
    batch_size: int,
    parallel: int,
    local_validation: bool,
    ca_file: str | None,
    scope: str,
    full: bool,
) -> None:
    """Load export files (default: every file in PHR_CONNECTOR_INBOX) into the PHR server.

    Only consented people's rows are converted. A file that cannot be loaded is reported and
    the run goes on with the next. Exits 1 when any row or file was rejected, 2 when the PHR
    server could not be reached (run again: it resumes where it stopped)."""
    s = _settings()
    municipality = s.option("PHR_CONNECTOR_MUNICIPALITY")
    inbox = Path(s.option("PHR_CONNECTOR_INBOX"))
    paths = (
        list(files) or sorted(p for p in inbox.iterdir() if p.is_file())
        if (files or inbox.is_dir())
        else []
    )
    if register_path is None and (inbox / "register.csv").is_file():
        register_path = inbox / "register.csv"
    work = [(p, src) for p in paths if (src := detect_source(p))]
    unknown = [p for p in files if not detect_source(p)]  # named, but no reader fits
    if not work and not unknown:
        raise click.ClickException("no export files to load")
    if register_path is None and any(SOURCES[src].needs_register for _, src in work):
        click.echo("warning: no resident register given; claims cannot be resolved", err=True)
    tokens = None if (dry_run and consent_file) else _tokens(s, ca_file, scope)
    consent = (
        FileConsent(consent_file)
        if consent_file
        else ConsentClient(s.urls["consent"], municipality, tokens, ca_file=ca_file)
    )
    sink = None if dry_run else FhirTransport(s.urls["fhir"], tokens, ca_file=ca_file)
    if report is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        report = s.var_dir / "connector-reports" / f"rejected-{stamp}.csv"
    report.parent.mkdir(parents=True, exist_ok=True)
    total = Summary()
    failed_files = 0
    last_run = run_metrics.LastRun(municipality, total)
    run_id = request_ids.start_job()  # on every call, so the servers' logs show this run
    metrics_file = s.option("PHR_CONNECTOR_METRICS_FILE")
    if not dry_run and metrics_file != run_metrics.OFF:  # written however the run ends
        click.get_current_context().call_on_close(lambda: last_run.write(Path(metrics_file)))
    with report.open("w", encoding="utf-8", newline="") as rep:
        try:
            conn = Connector(
                municipality=municipality,
                pseudo=_pseudonymizer(s),
                consent=consent,
                sink=sink,
                db=None if dry_run else Database(s.database_urls["connector"]),
                register_path=register_path,
                batch_size=batch_size,
                parallel=parallel,
                validate_resources=dry_run or local_validation,
                report=Report(rep),
                progress=Progress(),
                use_cache=not full,
            )
            for path in unknown:
                failed_files += 1
                conn.report.add(Problem(path.name, 0, UNREADABLE, "no reader for this file"))
                click.echo(f"{path.name}: not loaded: no reader for this file", err=True)
            for path, src in work:
                try:
                    summary = conn.run_file(path, src)
                except (TokenError, TransportError, HttpError):
                    raise  # the IdP or the PHR server: every later file would fail the same way
                except Exception as exc:  # one broken file must never end the run
                    failed_files += 1
                    conn.report.add(Problem(path.name, 0, UNREADABLE, unexpected(exc)))
                    click.echo(f"{path.name} [{src}]: not loaded: {unexpected(exc)}", err=True)
                    continue
                click.echo(f"{path.name} [{src}]: {summary.line()}")
                total.add(summary)
        except TokenError as exc:
            click.echo(
                f"stopped: {exc}; check PHR_CONNECTOR_SIGNING_KEY and the public key registered "
                "at the IdP (`phr connector jwk`)",
                err=True,
            )
            last_run.outcome = run_metrics.STOPPED
            sys.exit(2)
        except (TransportError, HttpError) as exc:
            click.echo(f"stopped: {exc}; run again to resume", err=True)
            last_run.outcome = run_metrics.STOPPED
            sys.exit(2)
    last_run.finish(failed_files)
    if not dry_run:
        click.echo(f"run {run_id}: the services' logs name it as request_id")
    click.echo(("dry run: " if dry_run else "") + "total: " + total.line())
    if dry_run:
        valid = total.read - total.skipped_no_consent - total.rejected
        click.echo(f"dry run: {valid} rows valid and would be sent; nothing was sent")
    if failed_files:
        click.echo(f"{failed_files} files not loaded; see {report}", err=True)
    if total.rejected:
        click.echo(f"{total.rejected} rows rejected; see {report}", err=True)
    if total.rejected or failed_files:
        sys.exit(1)


def _register_option(help_text: str) -> Callable[[FC], FC]:
    return click.option(
        "--register",
        "register_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        help=help_text,
    )


@click.command("link")
@_register_option("Resident-register export to match link requests against.")
@click.option(
    "--mch",
    "mch_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="MCH export: name a matched mother's children in the answer (guardianship).",
)
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), default=None)
def link(register_path: Path, mch_path: Path | None, ca_file: str | None) -> None:
    """Answer the consent service's pending link requests from the resident register."""
    s = _settings()
    client = ConsentClient(
        s.urls["consent"],
        s.option("PHR_CONNECTOR_MUNICIPALITY"),
        _tokens(s, ca_file, "system/*.cu"),
        ca_file=ca_file,
    )
    result = answer_link_requests(client, register_path, _pseudonymizer(s), mch_path)
    click.echo(
        f"link requests answered: {result.matched} matched ({result.children} children named), "
        f"{result.no_match} no match, {result.no_longer_pending} no longer pending"
    )


def _pseudonymizer(s: Settings) -> Pseudonymizer:
    """The city's codes; after a key rotation, the residents known then keep theirs."""
    try:
        return pseudonym_keys.for_settings(s)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("rotate-pseudonym-key")
@_register_option("The current resident register: every resident in it keeps their code.")
def rotate_pseudonym_key(register_path: Path) -> None:
    """Start making pseudonymous codes with a new key, without breaking any link: every
    resident of REGISTER keeps the code they have (their consent links and PHR records stay
    under it); residents who come later get codes under the new key. The old keys stay in
    PHR_CONNECTOR_PSEUDONYM_KEY for lookup. Run no connector job meanwhile."""
    try:
        n, path, held = pseudonym_keys.rotate(_settings(), register_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{n} residents keep their codes; new residents get codes under the new key "
        f"(in {path}, {held} keys held)"
    )


commands = [synth, run, link, jwk, rotate_pseudonym_key]
