"""The wire between `banklake serve`'s HTTP process and its scoring process (frames.py)."""

from __future__ import annotations

from python_jobs.serve import frames


def test_frames_split_anywhere_are_read_back_whole_and_in_order() -> None:
    sent = [
        frames.request(1, frames.HOT, 12.5, b'{"transaction_id": "T1"}'),
        frames.request(
            2,
            frames.HTTP,
            13.25,
            b"",
            {
                "method": "GET",
                "path": "/v1/ready",
                "raw_path": "/v1/ready",
                "query": "",
                "headers": [],
            },
        ),
        frames.request(3, frames.HOT, 14.0, b"x" * 70_000),
    ]
    wire = b"".join(sent)
    for step in (1, 7, 4096, len(wire)):
        reader = frames.Reader(frames.REQUEST)
        got = []
        for start in range(0, len(wire), step):
            got += reader.feed(wire[start : start + step])
        assert [fields for fields, _, _ in got] == [(1, 1, 12.5), (2, 2, 13.25), (3, 1, 14.0)]
        assert got[0][1] == b"" and got[0][2] == b'{"transaction_id": "T1"}'
        head = frames.http_head(got[1][1])
        assert head["path"] == "/v1/ready" and got[1][2] == b""
        assert got[2][2] == b"x" * 70_000
        assert reader.buffer == bytearray()  # nothing left over


def test_a_reply_keeps_its_status_headers_and_body() -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"x-\xe9", b"caf\xe9")]
    wire = frames.reply(7, 503, b"warming up", headers) + frames.reply(8, 200, b"{}", None)
    reader = frames.Reader(frames.REPLY)
    (first, head, body), (second, json_head, json_body) = reader.feed(wire)
    assert first == (7, 503) and body == b"warming up"
    assert frames.reply_headers(head) == headers  # latin-1 bytes survive the JSON head
    assert second == (8, 200) and json_body == b"{}"
    assert frames.reply_headers(json_head) == frames.JSON_HEADERS


def test_an_incomplete_frame_waits_for_the_rest() -> None:
    frame = frames.request(5, frames.HOT, 1.0, b"abc")
    reader = frames.Reader(frames.REQUEST)
    assert reader.feed(frame[:-1]) == []
    assert reader.feed(frame[-1:]) == [((5, 1, 1.0), b"", b"abc")]
