"""``vidtrack models pull NAME [--url URL] [--dir DIR]`` and ``vidtrack models list``."""
from __future__ import annotations

import logging
import shutil

from vidtrack import registry
from vidtrack.download import download, sha256_file

log = logging.getLogger("vidtrack.models")


def pull(name: str, base_url: str | None = None, directory=None, force: bool = False):
    """Download, verify and convert a known model; returns the saved ``.keras`` path.

    base_url: fetch each file from ``base_url/<file name>`` instead of its official URL (a
    mirror); the registry checksums still apply.
    """
    from vidtrack.commands.import_darknet import convert

    model = registry.get(name)
    out = registry.model_path(name, directory)
    if out.is_file() and not force:
        log.info("%s already pulled: %s", name, out)
        return out
    raw = registry.models_dir(directory) / "downloads" / name
    paths = []
    for f in model.files:
        url = f"{base_url.rstrip('/')}/{f.filename}" if base_url else f.url
        dest = raw / f.filename
        if dest.is_file() and f.sha256 and sha256_file(dest) == f.sha256:
            paths.append(dest)
            continue
        if f.sha256 is None:
            log.warning("no known SHA-256 for %s: the file is used unverified", f.filename)
        log.info("downloading %s", url)
        paths.append(download(url, dest, f.sha256))
    cfg, weights, names = paths
    convert(cfg, weights, out, names)
    return out


def _pull(args) -> int:
    out = pull(args.name, args.url, args.dir, args.force)
    print(f"{args.name}: {out}")
    return 0


def _list(args) -> int:
    d = registry.models_dir(args.dir)
    print(f"models dir: {d}")
    for name, m in sorted(registry.MODELS.items()):
        state = "pulled" if registry.model_path(name, args.dir).is_file() else "-"
        unknown = [f.filename for f in m.files if f.sha256 is None]
        note = f"  (checksum unknown: {', '.join(unknown)})" if unknown else ""
        print(f"  {name:<26} {state:<7} {m.description}{note}")
    extra = [p for p in registry.installed(args.dir) if p.stem not in registry.MODELS]
    for p in extra:
        print(f"  {p.stem:<26} local   {p}")
    return 0


def _remove(args) -> int:
    path = registry.model_path(args.name, args.dir)
    if path.is_file():
        path.unlink()
    shutil.rmtree(registry.models_dir(args.dir) / "downloads" / args.name, ignore_errors=True)
    print(f"removed {args.name}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="pull and list detector models (Yolo-Fastest, YOLOv3/v4-tiny)")
    sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    pp = sub.add_parser("pull", help="download, verify (SHA-256) and convert a known model to .keras")
    pp.add_argument("name", choices=sorted(registry.MODELS))
    pp.add_argument("--url", help="mirror base URL: files are fetched as URL/<file name>")
    pp.add_argument("--dir", help="models dir (default $VIDTRACK_MODELS or ~/.cache/vidtrack/models)")
    pp.add_argument("--force", action="store_true", help="convert again even if already pulled")
    pp.set_defaults(func=_pull)
    pl = sub.add_parser("list", help="known and pulled models")
    pl.add_argument("--dir", help="models dir")
    pl.set_defaults(func=_list)
    pr = sub.add_parser("remove", help="delete a pulled model and its downloads")
    pr.add_argument("name")
    pr.add_argument("--dir", help="models dir")
    pr.set_defaults(func=_remove)
