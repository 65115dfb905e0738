"""The tests' speed-ups of moto's DynamoDB server (python_jobs/tests/moto_s3.py) change no
answer: the same requests, through boto3, with and without each of them."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from moto.core.serialize import JSONSerializer

from python_jobs.tests.moto_s3 import (
    SERIALIZED,
    dynamodb_client,
    list_moto_modules_once,
    new_table,
)

ITEMS: list[dict[str, Any]] = [
    {
        "pk": {"S": "c#1"},
        "sk": {"S": f"r#{i:03d}"},
        "n": {"N": str(i * 1.5)},
        "big": {"N": "12345678901234567890.123"},
        "s": {"S": 'ação ✓ "quoted" \\ back'},
        "flag": {"BOOL": i % 2 == 0},
        "none": {"NULL": True},
        "list": {"L": [{"S": "a"}, {"N": "1"}, {"M": {"x": {"S": "y"}}}]},
        "map": {"M": {"nested": {"L": [{"BOOL": False}]}, "n": {"N": "-0.5"}}},
        "ss": {"SS": ["b", "a"]},
        "ns": {"NS": ["1", "2.5"]},
    }
    for i in range(30)
]
# binary values take moto's own serializer (JSON has no bytes): answered alike as well
BINARY = {
    "pk": {"S": "b#1"},
    "sk": {"S": "r#000"},
    "b": {"B": base64.b64decode(base64.b64encode(b"\x00\xffbytes"))},
    "bs": {"BS": [b"one", b"two"]},
}


def test_moto_item_results_written_as_json_answer_as_moto_s_serializer(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = dynamodb_client(endpoint)
    serialized_results: list[str] = []  # what reached moto's serializer, by operation
    serialize = JSONSerializer.serialize

    def counted(self: JSONSerializer, result: Any) -> Any:
        serialized_results.append(str(self.operation_model.name))
        return serialize(self, result)

    monkeypatch.setattr(JSONSerializer, "serialize", counted)
    table = new_table(client)
    for item in [*ITEMS, BINARY]:
        client.put_item(TableName=table, Item=item)
    key = {"pk": {"S": "c#1"}, "sk": {"S": "r#003"}}
    requests: list[Callable[[], Any]] = [
        lambda: client.get_item(TableName=table, Key=key, ConsistentRead=True),
        lambda: client.get_item(TableName=table, Key={"pk": {"S": "b#1"}, "sk": {"S": "r#000"}}),
        lambda: client.get_item(TableName=table, Key={"pk": {"S": "x"}, "sk": {"S": "y"}}),
        lambda: client.query(
            TableName=table,
            KeyConditionExpression="pk = :p AND sk BETWEEN :l AND :h",
            ExpressionAttributeValues={
                ":p": {"S": "c#1"},
                ":l": {"S": "r#005"},
                ":h": {"S": "r#025"},
            },
            Limit=7,
            ReturnConsumedCapacity="TOTAL",
        ),
        lambda: client.query(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "b#1"}},
        ),
        lambda: client.query(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "c#1"}},
            Select="COUNT",
        ),
        lambda: client.scan(TableName=table, Limit=11),
        lambda: client.batch_get_item(
            RequestItems={
                table: {
                    "Keys": [
                        key,
                        {"pk": {"S": "b#1"}, "sk": {"S": "r#000"}},
                        {"pk": {"S": "x"}, "sk": {"S": "y"}},
                    ]
                }
            }
        ),
        lambda: client.put_item(
            TableName=table, Item={**ITEMS[4], "n": {"N": "4"}}, ReturnValues="ALL_OLD"
        ),
        lambda: client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="ADD n :one SET flag = :f",
            ExpressionAttributeValues={":one": {"N": "1"}, ":f": {"BOOL": True}},
            ReturnValues="ALL_NEW",
        ),
        lambda: client.delete_item(
            TableName=table, Key={"pk": {"S": "c#1"}, "sk": {"S": "r#029"}}, ReturnValues="ALL_OLD"
        ),
    ]

    def answers() -> list[Any]:
        out = []
        for request in requests:
            answer = request()
            answer.pop("ResponseMetadata")
            out.append(answer)
        return out

    # writes change the table: each run starts from the same items
    serialized_results.clear()
    as_json = answers()
    # only the answers holding binary values took the serializer
    assert serialized_results == ["GetItem", "Query", "Scan", "BatchGetItem"]
    for item in [*ITEMS, BINARY]:
        client.put_item(TableName=table, Item=item)
    SERIALIZED.set()
    try:
        serialized = answers()
    finally:
        SERIALIZED.clear()
    assert as_json == serialized
    assert as_json[0]["Item"] == {**ITEMS[3]} and as_json[1]["Item"]["b"]["B"] == b"\x00\xffbytes"
    assert as_json[3]["Count"] == 7 and "LastEvaluatedKey" in as_json[3]


def test_moto_s_module_list_read_once_is_the_list_it_reads(endpoint: str) -> None:
    from moto import backends

    list_moto_modules_once()  # (moto_server did already: idempotent)
    cached = list(backends.list_of_moto_modules())
    assert cached == list(backends.list_of_moto_modules.uncached())  # type: ignore[attr-defined]
    assert {"dynamodb", "s3", "kinesis", "sns", "sqs"} <= set(cached)
    # the server still finds the backend of each request
    client = dynamodb_client(endpoint)
    assert new_table(client) in client.list_tables()["TableNames"]
