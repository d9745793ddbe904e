"""Property tests of the Open Inference Protocol JSON: exact float round trips, and parsers that turn any
document a server might send into either checked numbers or one EndpointProtocolError, nothing else."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from unlearn_audit.errors import EndpointProtocolError
from unlearn_audit.io.remote.protocol import TensorSpec, decode_output, encode_request, parse_metadata

WHERE = "http://127.0.0.1:1/v2/models/m"
SPEC = TensorSpec("input", "FP32", (-1, 3))
OUTPUT = TensorSpec("logits", "FP32", (-1, 4))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.just(3)),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    )
)
def test_every_finite_float32_crosses_json_bit_for_bit(rows):
    """What a server does with our body: parse doubles, narrow to FP32. The bytes must not change."""
    body = json.loads(encode_request(SPEC, rows, None))
    tensor = body["inputs"][0]
    received = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
    assert received.tobytes() == rows.tobytes()


@settings(max_examples=200, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.just(4)),
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    )
)
def test_valid_answers_decode_exactly(scores):
    document = {
        "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": list(scores.shape), "data": scores.reshape(-1).tolist()}
        ]
    }
    decoded = decode_output(
        json.loads(json.dumps(document)),
        output=OUTPUT,
        output_name=None,
        rows=len(scores),
        num_classes=4,
        labels=False,
        where=WHERE,
    )
    assert decoded.dtype == np.float32 and decoded.tobytes() == scores.tobytes()


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans())
def test_any_document_is_decoded_or_refused_with_one_error(document, labels):
    try:
        result = decode_output(
            document, output=None, output_name=None, rows=2, num_classes=None, labels=labels, where=WHERE
        )
    except EndpointProtocolError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(WHERE)
    else:
        assert np.isfinite(result).all()


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "outputs": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": st.just("logits"),
                        "datatype": st.sampled_from(["FP32", "INT64", "BOOL", 3]),
                        "shape": json_values,
                        "data": json_values,
                    }
                ),
                max_size=2,
            )
        }
    ),
    st.booleans(),
)
def test_near_valid_documents_are_decoded_or_refused_with_one_error(document, labels):
    try:
        decode_output(document, output=None, output_name="logits", rows=2, num_classes=None, labels=labels, where=WHERE)
    except EndpointProtocolError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(json_values | st.fixed_dictionaries({"inputs": json_values, "outputs": json_values}))
def test_any_metadata_is_parsed_or_refused_with_one_error(document):
    try:
        metadata = parse_metadata(document, WHERE)
    except EndpointProtocolError as exc:
        assert "\n" not in str(exc)
    else:
        assert metadata.inputs and all(isinstance(s.name, str) for s in metadata.inputs)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [([[0, 1], [2]], "ragged"), ([0, 12], "outside 0..9"), ([0.5, 1.0], "non-integer"), ([-1, 2], "outside 0..9")],
)
def test_label_outputs_are_checked(data, fragment):
    document = {"outputs": [{"name": "y", "datatype": "INT64", "shape": [2], "data": data}]}
    with pytest.raises(EndpointProtocolError, match=fragment):
        decode_output(document, output=None, output_name=None, rows=2, num_classes=10, labels=True, where=WHERE)
