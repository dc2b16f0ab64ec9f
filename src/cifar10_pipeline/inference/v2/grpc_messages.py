"""The gRPC protocol's messages and calls, read from ``grpc_predict_v2.textproto`` by the protobuf runtime: the message
classes (``protos.ModelInferRequest``...), the server's handler of the calls and a client's stub.

Why a FileDescriptorProto in text format rather than a .proto: a .proto needs protoc, either at import
(``grpc.protos_and_services``, i.e. grpcio-tools and the setuptools it requires, 15 MB that took the CPU image to
402 MB, over its 400 MB budget) or at build time (generated ``*_pb2.py`` committed, or a build step that editable
installs and ``PYTHONPATH=src`` do not run). The text format is the same schema in the form protoc itself produces,
which ``google.protobuf.text_format`` parses, and protobuf is already in the image (onnxruntime requires it): no
protoc, nothing generated, one source. The messages live in a descriptor pool of their own, so another user of the
names ``inference.*`` in the process (tritonclient's generated classes) does not clash with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

SCHEMA = Path(__file__).with_name("grpc_predict_v2.textproto")
FILE = text_format.Parse(SCHEMA.read_text(), descriptor_pb2.FileDescriptorProto())
_pool = descriptor_pool.DescriptorPool()
_classes = message_factory.GetMessages([FILE], pool=_pool)  # adds FILE; full name -> class, nested ones included
DESCRIPTOR = _pool.FindFileByName(FILE.name)
protos = SimpleNamespace(**{message.name: _classes[f"{FILE.package}.{message.name}"] for message in FILE.message_type})
(SERVICE,) = DESCRIPTOR.services_by_name.values()
SERVICE_NAME = SERVICE.full_name  # inference.GRPCInferenceService


def _calls() -> Iterator[tuple[str, Any, Any]]:
    """(name, request class, response class) of each call of the service."""
    for method in SERVICE.methods:
        yield method.name, _classes[method.input_type.full_name], _classes[method.output_type.full_name]


def handler(servicer: Any) -> grpc.GenericRpcHandler:
    """The server's side: each call answered by the ``servicer``'s method of the same name (``ModelInfer``...)."""
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        name: grpc.unary_unary_rpc_method_handler(getattr(servicer, name), request_deserializer=request.FromString,
                                                  response_serializer=response.SerializeToString)
        for name, request, response in _calls()
    })


def stub(channel: grpc.Channel) -> SimpleNamespace:
    """A client's side on ``channel``: each call as a method taking and returning messages
    (``stub(channel).ModelInfer(protos.ModelInferRequest(...))``), as a generated stub offers them."""
    return SimpleNamespace(**{
        name: channel.unary_unary(f"/{SERVICE_NAME}/{name}", request_serializer=request.SerializeToString,
                                  response_deserializer=response.FromString)
        for name, request, response in _calls()
    })
