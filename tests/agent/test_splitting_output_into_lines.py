"""How the agent splits what a script prints into lines: reading whole chunks at a time (the fast path)
gives exactly the lines, categories and cuts of reading them line by line, however the pipe split them."""

from contextlib import contextmanager
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tentacle_agent import script as script_module
from tentacle_agent.script import PipeBuffer, Script

SHORT_LINE = 16  # bytes: so that cut lines are common in the examples

pieces = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [
                b"\n",
                b"\r\n",
                b"\xe2\x9c\x93",
                b"\xff\xfe",
                b"##octopus[stdout-warning]\n",
                b"##octopus[stdout-default]\n",
                b"##octopus[setVariable name='Tg==' value='aHVudGVyMg==' sensitive='VHJ1ZQ==']\n",
                b"hunter2 hunter2",
            ]
        ),
    ),
    max_size=30,
)


def lines_of(chunks: list[bytes], stream: str, *, line_by_line: bool) -> list[tuple]:
    script = Script("ticket", {"Variables": [{"Value": "s3cret", "IsSensitive": True}]}, Path("/nonexistent"))
    buffer = PipeBuffer(stream)
    feed = script._feed_line_by_line if line_by_line else script.feed
    for chunk in chunks:
        feed(buffer, chunk)
    feed(buffer, b"\n" if buffer.buffer else b"")  # the pipe closed
    return [(line["Sequence"], line["Category"], line["Text"]) for line in script.lines]


@given(pieces=pieces, cuts=st.lists(st.integers(min_value=0, max_value=1200), max_size=8), data=st.data())
def test_any_split_of_the_output_gives_the_same_lines_as_reading_line_by_line(pieces, cuts, data):
    output = b"".join(pieces)
    stream = data.draw(st.sampled_from(["stdout", "stderr"]))
    bounds = sorted({0, len(output), *(cut % (len(output) + 1) for cut in cuts)})
    chunks = [output[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]
    with short_lines():
        assert lines_of(chunks, stream, line_by_line=False) == lines_of(chunks, stream, line_by_line=True)


@contextmanager
def short_lines():
    kept = script_module.MAX_LINE
    script_module.MAX_LINE = SHORT_LINE
    try:
        yield
    finally:
        script_module.MAX_LINE = kept


def test_a_chunk_of_whole_lines_keeps_their_order_category_and_masking():
    script = Script("ticket", {"Variables": [{"Value": "s3cret", "IsSensitive": True}]}, Path("/nonexistent"))
    stdout = PipeBuffer("stdout")
    script.feed(stdout, b"one\r\ntwo s3cret\n##octopus[stdout-warning]\nthree\nfour")
    script.feed(stdout, b" continued\n")
    assert [(line["Category"], line["Text"]) for line in script.lines] == [
        ("Info", "one"),
        ("Info", "two ********"),
        ("Warning", "three"),
        ("Warning", "four continued"),
    ]
    assert [line["Sequence"] for line in script.lines] == [0, 1, 2, 3]
