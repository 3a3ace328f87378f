from .basemodel import TpPartBaseModel
from .infer_struct import InferStateInfo, ModelInput
from .layer_infer import PostLayerInfer, PreLayerInfer, TransformerLayerInfer
from .layer_weights import PreAndPostLayerWeight, TensorSpec, TransformerLayerWeight

__all__ = ["TpPartBaseModel", "InferStateInfo", "ModelInput", "PreLayerInfer", "TransformerLayerInfer",
           "PostLayerInfer", "PreAndPostLayerWeight", "TransformerLayerWeight", "TensorSpec"]
