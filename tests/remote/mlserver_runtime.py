"""An MLServer custom runtime that serves an unlearn-audit safetensors checkpoint over the Open Inference
Protocol (the test server of tests/remote). Model settings ``parameters.uri`` names the checkpoint;
``parameters.extra.output`` is ``logits`` (default) or ``probabilities`` (softmax on the server)."""

from __future__ import annotations

import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

from unlearn_audit import load_model
from unlearn_audit.inference import predict_logits


class SafetensorsClassifier(MLModel):
    async def load(self) -> bool:
        parameters = self.settings.parameters
        if parameters is None or not parameters.uri:
            raise ValueError("model settings need parameters.uri (the safetensors checkpoint)")
        self._model = load_model(parameters.uri, device="cpu")
        extra = parameters.extra or {}
        self._output = str(extra.get("output", "logits"))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 255.0
        inputs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        scores = predict_logits(self._model, inputs, batch_size=max(1, inputs.shape[0]))
        if self._output == "probabilities":
            scores = scores.softmax(dim=1)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output(self._output, scores.numpy())],
        )
