"""Long jobs say where they are and keep their tools' pages in logs (issue 24): each
step of build/mkimage.sh is one line, its time and its log; a failing step shows the
log's last lines and names it."""

import os
import subprocess

from conftest import ROOT

MKIMAGE = os.path.join(ROOT, "build", "mkimage.sh")


def run_mkimage(tmp_path, cache, **env):
    environment = dict(os.environ, IMAGE_CACHE=str(cache), IMAGE_LOGS=str(tmp_path / "logs"),
                       IMAGE_OUT=str(tmp_path / "card.img"), SOURCE_DATE_EPOCH="1",
                       ROOT_ONLY="1", **env)
    return subprocess.run([MKIMAGE, "rpi-zero-w"], env=environment, capture_output=True,
                          text=True, timeout=120, cwd=str(tmp_path))


def test_a_step_is_one_line_with_its_time_and_log(tmp_path):
    """A root already made (its stamp matches): step 1 runs, says so in two lines."""
    board = dict(line.split("=", 1) for line in open(os.path.join(
        ROOT, "distros", "raspberry-pi-zero-w", "board.env")) if "=" in line and
        not line.startswith("#"))
    stamp = "bookworm %s %s" % (board["DEB_ARCH"].strip().strip('"'),
                                board["ROOT_PACKAGES"].strip().strip('"'))
    root = tmp_path / "cache" / "root"
    root.mkdir(parents=True)
    (root / ".schema-image-root").write_text(stamp + "\n")
    done = run_mkimage(tmp_path, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    log = tmp_path / "logs" / "1-make_base_root.log"
    assert lines[0] == "mkimage: step 1/8: make_base_root"
    assert lines[1].startswith("mkimage: step 1/8: make_base_root done in ") and \
        lines[1].endswith("(%s)" % log)
    assert log.exists() and len(lines) == 2


def test_a_failing_step_shows_the_end_of_its_log(tmp_path):
    """The cache is under a file: the step's mkdir fails; its message was in the log
    and is shown, with the log's name."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = run_mkimage(tmp_path, blocker / "cache")
    assert done.returncode != 0
    log = tmp_path / "logs" / "1-make_base_root.log"
    assert "mkimage: failed; the last lines of %s:" % log in done.stderr
    assert "Not a directory" in done.stderr and "Not a directory" in log.read_text()


def test_flashing_shows_bytes_written_of_all_and_the_rate():
    import io
    import time
    from schema_init.fleet import fleet
    out = io.StringIO()
    fleet._progress("write ", 96 << 20, 512 << 20, time.monotonic() - 2, out)
    line = out.getvalue()
    assert line.startswith("\rwrite  [") and " 18% " in line
    assert "96.0 of 512.0 MiB" in line and line.endswith("MiB/s")
    fleet._progress("write ", 512 << 20, 512 << 20, time.monotonic() - 2, out)
    assert out.getvalue().endswith("\n")                    # done: the line is kept


def test_making_cards_counts_them(tmp_path, capsys):
    from test_fleet import GOOD, HEADER, make_image, write_list
    from schema_init.fleet import fleet
    image = str(tmp_path / "card.img")
    make_image(image)
    rows = HEADER + GOOD + GOOD.replace("pump-01", "pump-02")
    assert fleet.main(["cards", image, write_list(tmp_path, rows), "--out",
                       str(tmp_path / "out"), "--jobs", "1"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in lines] == ["[1/2]", "[2/2]"]
