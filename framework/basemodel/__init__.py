from .basemodel import TpPartBaseModel
from .decoder_model import DecoderTpPartModel
from .infer_struct import InferStateInfo, ModelInput
from .layer_infer import GatedMLPTransformerLayerInfer, PostLayerInfer, PreLayerInfer, RMSNormPostLayerInfer, \
    TransformerLayerInfer
from .layer_weights import DecoderPreAndPostLayerWeight, GatedMLPTransformerLayerWeight, PreAndPostLayerWeight, \
    TensorSpec, TransformerLayerWeight, weight_and_bias
from .rotary import Rotary, RotaryInferStateInfo

__all__ = ["TpPartBaseModel", "DecoderTpPartModel", "InferStateInfo", "ModelInput", "PreLayerInfer",
           "TransformerLayerInfer", "GatedMLPTransformerLayerInfer", "PostLayerInfer", "RMSNormPostLayerInfer",
           "PreAndPostLayerWeight", "DecoderPreAndPostLayerWeight", "TransformerLayerWeight",
           "GatedMLPTransformerLayerWeight", "TensorSpec", "weight_and_bias", "Rotary", "RotaryInferStateInfo"]
