"""What TensorRT 10.x's ONNX parser takes: its operator support list and attribute rules, as data.

Transcribed from onnx/onnx-tensorrt ``docs/operators.md`` (TensorRT 10.15 edition) and the
parser source (``onnxOpImporters.cpp``); :mod:`.onnx_tensorrt_readiness` checks a graph against
it, and its docstring says what each rule rests on and what is not checked.
"""
from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Support list: onnx/onnx-tensorrt docs/operators.md, TensorRT 10.15 edition (the "Supported
# Types" column and the "Restrictions" column, the latter paraphrased). TensorRT 10.x.
# --------------------------------------------------------------------------------------------
TRT_VERSION = "10.x"
OPSET_MIN, OPSET_MAX = 9, 20  # operators.md for TensorRT 10.0: "opset 9 to opset 20"
SUPPORT_LIST_SOURCE = ("onnx/onnx-tensorrt docs/operators.md (TensorRT 10.15 edition; "
                       "opset bound from the TensorRT 10.0 edition)")

_F = ("FP32", "FP16", "BF16")
_I = ("INT32", "INT64")
_FI = _F + _I
_FIB = _FI + ("BOOL",)

SUPPORTED_OPS: dict[str, tuple[tuple[str, ...], str]] = {
    # op: (supported types, restrictions from the list ("" when none))
    "Abs": (_FI, ""), "Acos": (_F, ""), "Acosh": (_F, ""), "Add": (_FI, ""),
    "And": (("BOOL",), ""), "ArgMax": (_FI, ""), "ArgMin": (_FI, ""), "Asin": (_F, ""),
    "Asinh": (_F, ""), "Atan": (_F, ""), "Atanh": (_F, ""),
    "Attention": (_F + ("INT8", "FP8"), "Q, K, V and attn_mask 4-D; no past_key/past_value/"
                  "nonpad_kv_seqlen inputs; no present_*/qk_matmul_output outputs"),
    "AveragePool": (_F, "2-D or 3-D pooling only; dilations empty or all ones"),
    "BatchNormalization": (_F, ""), "BlackmanWindow": (("FP32", "FP16"), ""),
    "Cast": (_FI + ("UINT8", "BOOL"), ""), "CastLike": (_FI + ("UINT8", "BOOL"), ""),
    "Ceil": (_F, ""), "Celu": (_F, ""), "Clip": (_F, ""), "Concat": (_FIB, ""),
    "Constant": (_F + ("FP8", "FP4", "INT4") + _I + ("BOOL",),
                 "sparse_value, value_string and value_strings unsupported"),
    "ConstantOfShape": (_F + ("FP8", "FP4", "INT4") + _I + ("BOOL",), ""),
    "Conv": (_F, ""), "ConvTranspose": (_F, ""), "Cos": (_F, ""), "Cosh": (_F, ""),
    "CumSum": (_F, "axis must be a build-time constant"),
    "DeformConv": (("FP32", "FP16"), "1-D or 2-D spatial input; equal begin/end pads"),
    "DepthToSpace": (_FI, ""),
    "DequantizeLinear": (("INT8", "FP8", "FP4", "INT4"), "x_zero_point must be zero"),
    "Div": (_FI, ""), "Dropout": (_F, "is_training must be an initializer and False"),
    "Einsum": (_F, ""), "Elu": (_F, ""), "Equal": (_FI, ""), "Erf": (_F, ""), "Exp": (_F, ""),
    "Expand": (_FIB, ""), "EyeLike": (_FIB, "input must have static dimensions"),
    "Flatten": (_FIB, ""), "Floor": (_F, ""), "Gather": (_FIB, ""),
    "GatherElements": (_FIB, ""), "GatherND": (_FIB, ""), "Gelu": (_F + ("INT8",) + _I, ""),
    "Gemm": (_F, ""), "GlobalAveragePool": (_F, ""), "GlobalLpPool": (_F, ""),
    "GlobalMaxPool": (_F, ""), "Greater": (_FI, ""), "GreaterOrEqual": (_FI, ""),
    "GridSample": (("FP32", "FP16"), "input must be 4-D"), "GroupNormalization": (_F, ""),
    "GRU": (_F, "bidirectional: same activations both ways"),
    "HammingWindow": (("FP32", "FP16"), ""), "HannWindow": (("FP32", "FP16"), ""),
    "HardSigmoid": (_F, ""), "HardSwish": (_F, ""),
    "Hardmax": (_F, "axis dimension must be a build-time constant"), "Identity": (_FIB, ""),
    "If": (_FIB, "branch outputs of the same rank and with different names"),
    "ImageScaler": (_F, ""), "InstanceNormalization": (_F, ""), "IsInf": (_F, ""),
    "IsNaN": (_FI, ""), "LayerNormalization": (_F, "only the first output (Y)"),
    "LeakyRelu": (_F, ""), "Less": (_FI, ""), "LessOrEqual": (_FI, ""), "Log": (_F, ""),
    "LogSoftmax": (_F, ""),
    "Loop": (_FIB, "static scan output length; loop-carried shapes fixed across iterations"),
    "LRN": (_F, ""), "LSTM": (_F, "bidirectional: same activations; input_forget 0; layout 0"),
    "LpNormalization": (_F, ""), "LpPool": (_F, "dilations empty or all ones"),
    "MatMul": (_F, ""), "Max": (_FI, ""),
    "MaxPool": (_F, "2-D or 3-D pooling only; no Indices output; dilations empty or all ones"),
    "Mean": (_F + ("FP8",) + _I, ""), "MeanVarianceNormalization": (_F, ""), "Min": (_FI, ""),
    "Mish": (("FP32", "FP16"), ""), "Mod": (_FI, ""), "Mul": (_FI, ""), "Neg": (_FI, ""),
    "NonMaxSuppression": (("FP32", "FP16"), ""), "NonZero": (("FP32", "FP16"), ""),
    "Not": (("BOOL",), ""), "OneHot": (_FIB, "depth must be a build-time constant"),
    "Or": (("BOOL",), ""), "Pad": (_FI, ""), "ParametricSoftplus": (_F, ""), "Pow": (_FI, ""),
    "PRelu": (_F, ""), "QuantizeLinear": (_F, "y_zero_point must be 0"),
    "RandomNormal": (_F, "seed ignored"), "RandomNormalLike": (_F, "seed ignored"),
    "RandomUniform": (_F, "seed ignored"), "RandomUniformLike": (_F, "seed ignored"),
    "Range": (_FI, ""), "Reciprocal": (_F, ""),
    **{op: (_FI, "axes must be an initializer") for op in (
        "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
        "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
    "Relu": (_FI, ""), "Reshape": (_FIB, ""),
    "Resize": (_F, "coordinate_transformation_mode half_pixel, pytorch_half_pixel, "
               "tf_half_pixel_for_nn, asymmetric or align_corners; mode nearest or linear; "
               "nearest_mode floor, ceil, round_prefer_floor or round_prefer_ceil; "
               "keep_aspect_ratio_policy stretch; with a tensor scales input, axes must be "
               "0..rank-1; no antialiasing"),
    "ReverseSequence": (_FIB, ""), "RMSNormalization": (_F, ""),
    "RNN": (_F, "bidirectional: same activations both ways"),
    "RoiAlign": (("FP32", "FP16"), ""), "RotaryEmbedding": (_F, "position_ids must be INT64"),
    "Round": (_F, ""), "STFT": (("FP32",), "frame_step and window initializers; real input"),
    "ScaledTanh": (_F, ""), "Scan": (_F, ""), "Scatter": (_FI, ""),
    "ScatterElements": (_FI, ""), "ScatterND": (_FI, "reduction must be none"),
    "Selu": (_F, ""), "Shape": (_FIB, ""), "Shrink": (_FI, ""), "Sigmoid": (_F, ""),
    "Sign": (_FI, ""), "Sin": (_F, ""), "Sinh": (_F, ""), "Size": (_FIB, ""),
    "Slice": (_FIB, ""), "Softmax": (_F, ""), "Softplus": (_F, ""), "Softsign": (_F, ""),
    "SpaceToDepth": (_FI, ""), "Split": (_FIB, ""), "Sqrt": (_F, ""),
    "Squeeze": (_FIB, "axes must resolve to a constant"), "Sub": (_FI, ""), "Sum": (_FI, ""),
    "Tan": (_F, ""), "Tanh": (_F, ""),
    "TensorScatter": (_F + ("INT32",), "past_cache and update 4-D; axis -2"),
    "ThresholdedRelu": (_F, ""), "Tile": (_FIB, ""),
    "TopK": (_FI, "sorted must be 1; K below 3840"), "Transpose": (_FIB, ""),
    "Trilu": (_FIB, ""), "Unsqueeze": (_FIB, "axes must resolve to a constant"),
    "Upsample": (_F, ""), "Where": (_FIB, ""), "Xor": (("BOOL",), ""),
}

# Listed with "N" in the same document.
UNSUPPORTED_OPS = frozenset({
    "AffineGrid", "Bernoulli", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr",
    "BitwiseXor", "Col2Im", "CenterCropPad", "Compress", "ConcatFromSequence", "ConvInteger",
    "DFT", "Det", "DynamicQuantizeLinear", "ImageDecoder", "MatMulInteger", "MaxRoiPool",
    "MaxUnpool", "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional",
    "OptionalGetElement", "OptionalHasElement", "QLinearConv", "QLinearMatMul",
    "RegexFullMatch", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
    "SequenceInsert", "SequenceLength", "SequenceMap", "SoftmaxCrossEntropyLoss",
    "SplitToSequence", "StringConcat", "StringNormalizer", "StringSplit", "TfIdfVectorizer",
    "Unique",
})

# Attribute values TensorRT 10.x takes (operators.md restrictions; onnxOpImporters.cpp).
RESIZE_MODES = ("nearest", "linear")  # the parser source also maps "cubic"; the list names
#                                       only these two, so cubic is refused here (unsure).
RESIZE_COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                           "asymmetric", "align_corners")
RESIZE_NEAREST_MODES = ("floor", "ceil", "round_prefer_floor", "round_prefer_ceil")
# Pad: the parser maps constant, reflect and edge (and, in the newest source, wrap, through
# SampleMode::kWRAP). The list gives no restriction; wrap is refused here because we could
# not confirm from which 10.x release the parser takes it.
PAD_MODES = ("constant", "reflect", "edge")
AUTO_PAD = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")  # ONNX's values; no TRT restriction
QUANTIZED_TYPES = ("INT8",)  # int8 is what this toolkit exports (FP8/INT4/FP4 also exist)

# (op, input index) that take shape data: int64 is expected there.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Resize": (3,), "Slice": (1, 2, 3, 4), "Pad": (1, 3), "Split": (1,),
    "Expand": (1,), "ConstantOfShape": (0,), "Tile": (1,), "Squeeze": (1,), "Unsqueeze": (1,),
    "TopK": (1,), "Gather": (1,), "GatherElements": (1,), "GatherND": (1,), "OneHot": (0, 1),
    "ScatterND": (1,), "ScatterElements": (1,), "CumSum": (1,), "Range": (0, 1, 2),
    "Trilu": (1,),
    **{op: (1,) for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
                           "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
                           "ReduceSumSquare")},
}
# Ops that compute on shapes: an int64 flowing through them stays shape data if its results do.
SHAPE_ARITHMETIC = frozenset({
    "Cast", "Concat", "Gather", "Slice", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Add",
    "Sub", "Mul", "Div", "Max", "Min", "Neg", "Abs", "Equal", "Where", "Expand", "Range",
    "ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin", "Shape", "Size", "Mod", "Flatten",
    "ConstantOfShape", "Tile", "Greater", "Less", "Not",
})

TYPE_NAMES = {  # onnx TensorProto.DataType -> the support list's name
    1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "STRING", 9: "BOOL", 10: "FP16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64",
    16: "BF16", 17: "FP8", 18: "FP8", 19: "FP8", 20: "FP8", 21: "UINT4", 22: "INT4", 23: "FP4",
}

