"""`swintormer submit IN -o OUT --url URL`: deblur one image through a running service.

Uploads the file, follows the job with long-polls while drawing a progress bar from its
tile counts (on stderr), and writes the result to OUT. Every error the API can return is
printed as `error (<code>): <message>` with a hint where one helps; the exit status is 0 on
success, 1 on an API or network error, 2 on bad arguments. 429 and 503 are retried after
their Retry-After, a few times; the upload carries an Idempotency-Key, so a retried POST
never creates a second job.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import httpx

from service.codec import format_for_suffix
from service.schemas import OutputFormat
from swintormer.files import write_atomically
from swintormer.progress_bar import draw_progress, end_progress

POLL_WAIT_S = 10
MAX_BACKOFF_RETRIES = 5

HINTS = {
    "unauthorized": "pass --api-key or set SWINTORMER_API_KEY",
    "forbidden": "the API key was refused",
    "payload_too_large": "the server's limit is SWINTORMER_MAX_UPLOAD_BYTES",
    "too_many_pixels": "downscale the image or raise SWINTORMER_MAX_PIXELS on the server",
    "unsupported_media_type": "send PNG, JPEG, WebP, TIFF or HEIC/HEIF",
    "unsupported_bit_depth": "convert to unsigned 8 or 16 bit",
    "queue_full": "the service is busy; try again later",
    "redis_unavailable": "the service's Redis is down",
}


class SubmitError(Exception):
    """Something the user must be told; the message is complete."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input", type=Path, help="image to deblur (PNG, JPEG, WebP, TIFF or HEIC/HEIF)"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write it")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="service base URL")
    parser.add_argument("--api-key", default=None, help="X-API-Key, when the server needs one")
    parser.add_argument(
        "--format", choices=[fmt.value for fmt in OutputFormat], default=None,
        help="result format (default: from OUT's extension, else png)",
    )  # fmt: skip
    parser.add_argument("--tile-px", type=int, default=None, help="tile edge in pixels")
    parser.add_argument("--prior-steps", type=int, default=None, help="diffusion-prior steps")
    parser.add_argument("--seed", type=int, default=None, help="seed of the prior's sampler")
    parser.add_argument(
        "--self-ensemble", type=int, default=None,
        help="flipped/turned copies of each tile averaged: 1, 2, 4 or 8 (that many times slower)",
    )  # fmt: skip
    parser.add_argument(
        "--refine-blur", action=argparse.BooleanOptionalAction, default=None,
        help="restore twice, the second time with the blur the first result explains (about 2x"
        " slower; default: the server's setting)",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=3600, help="give up after this many s")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"
    hint = HINTS.get(code)
    return f"error ({code}): {message}" + (f" — {hint}" if hint else "")


def _request(client: httpx.Client, method: str, url: str, **kwargs: object) -> httpx.Response:
    """One API call; 429/503 are retried after Retry-After, other errors raise SubmitError."""
    for _ in range(MAX_BACKOFF_RETRIES):
        try:
            response = client.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as error:
            raise SubmitError(f"cannot reach {client.base_url}: {error}") from error
        if response.status_code in (409, 429, 503) and "retry-after" in response.headers:
            time.sleep(float(response.headers["retry-after"]))
            continue
        if response.status_code >= 400:
            raise SubmitError(_error_text(response))
        return response
    raise SubmitError(_error_text(response))


def _format_for(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    return (format_for_suffix(args.output) or OutputFormat.PNG).value


def submit(args: argparse.Namespace) -> dict[str, object]:
    """Upload, follow, download; return the final job view."""
    if not args.input.is_file():
        raise SubmitError(f"{args.input}: no such file")
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    form = {"output_format": _format_for(args)}
    for name in ("tile_px", "prior_steps", "seed", "self_ensemble"):
        if getattr(args, name) is not None:
            form[name] = str(getattr(args, name))
    if args.refine_blur is not None:
        form["refine_blur"] = "true" if args.refine_blur else "false"
    deadline = time.monotonic() + args.timeout
    with httpx.Client(base_url=args.url, headers=headers, timeout=POLL_WAIT_S + 30) as client:
        upload = {"file": (args.input.name, args.input.read_bytes())}
        # one key per run: a POST retried after a 503 cannot create a second job
        key = {"Idempotency-Key": uuid.uuid4().hex}
        accepted = _request(client, "POST", "/deblur", files=upload, data=form, headers=key).json()
        status_url = accepted["status_url"]
        view: dict[str, object] = accepted
        while True:
            view = _request(client, "GET", status_url, params={"wait": POLL_WAIT_S}).json()
            progress = view.get("progress") or {}
            assert isinstance(progress, dict)
            if not args.quiet:
                draw_progress(
                    int(progress.get("done", 0)), int(progress.get("total", 0)), str(view["status"])
                )
            if view["status"] in ("succeeded", "failed", "canceled", "expired"):
                break
            if time.monotonic() > deadline:
                raise SubmitError(
                    f"gave up after {args.timeout:.0f} s; job {accepted['id']} goes on"
                )
        if not args.quiet:
            end_progress()
        if view["status"] != "succeeded":
            error = view.get("error") or {}
            assert isinstance(error, dict)
            detail = f" ({error.get('code')}): {error.get('message')}" if error else ""
            raise SubmitError(f"job {accepted['id']} {view['status']}{detail}")
        result = _request(client, "GET", f"/jobs/{accepted['id']}/result")
        write_atomically(args.output, result.content)
    return view


def run(args: argparse.Namespace) -> int:
    try:
        view = submit(args)
    except SubmitError as error:
        print(f"\nswintormer submit: {error}", file=sys.stderr)
        return 1
    timings = view.get("timings") or {}
    assert isinstance(timings, dict)
    print(f"{args.output}: done in {timings.get('run_s') or 0:.2f} s of work")
    return 0
