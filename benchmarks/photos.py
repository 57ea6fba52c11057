"""What a photo costs intake to take: CPU seconds and peak memory of ``services.intake.photos.clean``.

Each file is cleaned in a fresh child process (``python -m benchmarks.photos FILE``), which reports the
CPU seconds of ``clean`` and the growth of its peak resident memory over the process after its imports,
so one file's memory cannot hide another's. The raw baseline, in the same kind of child, is Pillow
decoding the same file and nothing else (``Image.open(...).load()``); the ratio is raw ÷ ours (1: clean
costs what decoding costs). A refused file's ratio is against the decode it avoided.

Memory is ``VmHWM`` of the child (Linux). The files, made here from Pillow's own encoders:

- ``phone_12mp``: a 4,000 × 3,000 JPEG with a camera's EXIF (a phone's default output);
- ``phone_50mp``: an 8,160 × 6,120 JPEG (a 50 MP phone's full-resolution mode), decoded reduced by 2;
- ``png_16mp``: a 4,000 × 4,000 RGBA PNG (the most pixels a photo may have);
- ``hostile_png``: a 12,000 × 3,333 RGB PNG of about 160 kB (like the file that took 2–3 s and 440 MB under the
  earlier 40 MP limit), refused from its header.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._support import ROOT, note


def _noise_rows(width: int, height: int, mode: str):
    """An image with some texture (a flat colour compresses to nothing and decodes unlike a photo)."""
    from PIL import Image, ImageDraw

    image = Image.linear_gradient("L").resize((width, height)).convert(mode)
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 97):
        draw.line([(x, 0), (width - x, height)], fill=(200, 40, 40, 255)[: len(mode)] if mode != "L" else 200, width=3)
    return image


def files(directory: Path, quick: bool) -> dict[str, Path]:
    from PIL import Image

    made = {}
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "PhoneMaker", 1
    exif.get_ifd(0x8825).update({1: "N", 2: (27.0, 53.0, 38.0), 3: "E", 4: (102.0, 15.0, 50.0)})
    shapes = {"phone_12mp": ((4000, 3000), "RGB", "JPEG"), "phone_50mp": ((8160, 6120), "RGB", "JPEG"),
              "png_16mp": ((4000, 4000), "RGBA", "PNG")}
    if quick:
        shapes = {"phone_12mp": shapes["phone_12mp"]}
    for name, ((width, height), mode, kind) in shapes.items():
        out = io.BytesIO()
        image = _noise_rows(width, height, mode)
        image.save(out, kind, **({"quality": 90, "exif": exif.tobytes()} if kind == "JPEG" else {}))
        made[name] = directory / f"{name}.{kind.lower()}"
        made[name].write_bytes(out.getvalue())
    out = io.BytesIO()
    hostile = Image.new("RGB", (12_000, 3_333))
    hostile.paste((255, 255, 255), (0, 0, 12_000, 40))
    hostile.save(out, "PNG", optimize=True)
    made["hostile_png"] = directory / "hostile.png"
    made["hostile_png"].write_bytes(out.getvalue())
    return made


def measure(path: Path, raw: bool) -> dict:
    """Run one child; → {"cpu_s", "peak_mb", "outcome"}."""
    result = subprocess.run([sys.executable, "-m", "benchmarks.photos", str(path)] + (["--raw"] if raw else []),
                            cwd=ROOT, capture_output=True, text=True, check=True, timeout=600)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[tuple]:
    figures = []
    with tempfile.TemporaryDirectory(prefix="gridcase-photos-") as directory:
        for name, path in files(Path(directory), quick).items():
            raw, ours = measure(path, raw=True), measure(path, raw=False)
            note(f"{name}: {path.stat().st_size / 1024:,.0f} kB; raw decode {raw['cpu_s']:.3f} s "
                 f"{raw['peak_mb']:.0f} MB; clean {ours['cpu_s']:.3f} s {ours['peak_mb']:.0f} MB → {ours['outcome']}")
            figures.append((f"photos.raw_decode_{name}", round(raw["cpu_s"], 3), "s", None))
            figures.append((f"photos.clean_{name}", round(ours["cpu_s"], 3), "s",
                            round(raw["cpu_s"] / ours["cpu_s"], 2) if ours["cpu_s"] else None))
            figures.append((f"photos.clean_peak_{name}", round(ours["peak_mb"]), "MB",
                            round(raw["peak_mb"] / ours["peak_mb"], 2) if ours["peak_mb"] >= 1 else None))
    return figures


def _peak_kb() -> int:
    """This process's peak resident memory in kB (``VmHWM``: of this program only; ``ru_maxrss`` would
    start from the parent's peak, which survives fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _child(path: str, raw: bool) -> None:
    from PIL import Image

    from services.intake import photos

    data = Path(path).read_bytes()
    before = _peak_kb()
    started = time.process_time()
    if raw:
        Image.MAX_IMAGE_PIXELS = None
        Image.open(io.BytesIO(data)).load()
        outcome = "decoded"
    else:
        try:
            cleaned = photos.clean(data)
            outcome = f"stored {cleaned.width} x {cleaned.height}, {len(cleaned.image) // 1024} kB"
        except (photos.BadImage, photos.NotAnImage, photos.TooLarge) as exc:
            outcome = f"refused: {exc}"
    cpu = time.process_time() - started
    peak = (_peak_kb() - before) / 1024
    print(json.dumps({"cpu_s": cpu, "peak_mb": peak, "outcome": outcome}))


if __name__ == "__main__":
    _child(sys.argv[1], "--raw" in sys.argv)
