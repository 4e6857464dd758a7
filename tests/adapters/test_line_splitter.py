"""The SSH adapter's line splitter holds at most LINE_HOLD characters of one line: a host
printing megabytes with no newline costs the worker that much memory, not the line's size,
and the callback learns exactly how much was dropped (clusters/adapters/ssh.py)."""

from __future__ import annotations

from clusters.adapters.ssh import _LineSplitter


def feed_all(splitter: _LineSplitter, data: bytes, chunk: int = 65536) -> list[tuple[str, int]]:
    lines = []
    for at in range(0, len(data), chunk):
        lines.extend(splitter.feed(data[at:at + chunk]))
    lines.extend(splitter.feed(b"", final=True))
    return lines


def test_an_overlong_line_is_held_up_to_the_limit_and_the_rest_counted() -> None:
    splitter = _LineSplitter(hold=1000)
    data = b"a" * 3_000_000 + b"\nnext\n" + "é".encode() * 5000 + b"\nlast"
    assert feed_all(splitter, data) == [("a" * 1000, 2_999_000), ("next", 0),
                                        ("é" * 1000, 4000), ("last", 0)]
    assert splitter._held == 0 and not splitter._pieces


def test_lines_and_line_ends_split_across_chunks_come_out_whole() -> None:
    splitter = _LineSplitter(hold=1000)
    data = "one\r\ntwo\rthree\n€uro\n".encode()
    for chunk in (1, 2, 3, 5):
        assert feed_all(splitter, data, chunk) == [("one", 0), ("two", 0), ("three", 0),
                                                    ("€uro", 0)], chunk


def test_a_chunk_that_is_only_the_lf_of_a_crlf_does_not_swallow_a_later_lf() -> None:
    """`a\\r` | `\\n` | `\\nb\\n`: the second chunk ends the CRLF, the third's LF is a blank
    line of its own (it was swallowed as if it still followed the CR)."""
    splitter = _LineSplitter(hold=1000)
    lines = []
    for chunk in (b"a\r", b"\n", b"\nb\n"):
        lines.extend(splitter.feed(chunk))
    lines.extend(splitter.feed(b"", final=True))
    assert lines == [("a", 0), ("", 0), ("b", 0)]
    # And byte by byte, every split of the same output gives the same lines.
    for chunk in (1, 2, 3):
        assert feed_all(_LineSplitter(hold=1000), b"a\r\n\nb\n", chunk) == lines, chunk
