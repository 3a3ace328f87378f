from .basemodel import TpPartBaseModel
from .infer_struct import InferStateInfo, ModelInput
from .layer_infer import PostLayerInfer, PreLayerInfer, TransformerLayerInfer
from .layer_weights import PreAndPostLayerWeight, TensorSpec, TransformerLayerWeight, weight_and_bias

__all__ = ["TpPartBaseModel", "InferStateInfo", "ModelInput", "PreLayerInfer", "TransformerLayerInfer",
           "PostLayerInfer", "PreAndPostLayerWeight", "TransformerLayerWeight", "TensorSpec", "weight_and_bias"]
