#!/usr/bin/env python3
"""Prints the events moto holds for one log stream, one JSON object per line.

    tests/servers/cw_events.py DIR PORT GROUP STREAM

DIR is the directory `moto.sh start DIR PORT` wrote credentials.env into. Each line is
{"timestamp": <ms>, "message": "<text>"}, oldest first. Exits 1 (with the error on stderr)
when the group or stream does not exist. Run it with the moto venv's python
(`$(tests/servers/moto.sh venv)/bin/python`), which has boto3.
"""
import json
import os
import sys

import boto3
import botocore.exceptions


def credentials(path):
    env = {}
    with open(path) as f:
        for line in f:
            key, sep, value = line.strip().partition("=")
            if sep:
                env[key] = value
    return env


def main():
    if len(sys.argv) != 5:
        sys.exit(f"usage: {sys.argv[0]} DIR PORT GROUP STREAM")
    directory, port, group, stream = sys.argv[1:]
    env = credentials(os.path.join(directory, "credentials.env"))
    client = boto3.client(
        "logs",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name=env.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    try:
        while True:
            page = client.get_log_events(**kwargs)
            for event in page["events"]:
                print(json.dumps({"timestamp": event["timestamp"], "message": event["message"]}))
            token = page.get("nextForwardToken")
            if not page["events"] or token is None or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        sys.exit(f"cw_events: {err['Code']}: {err.get('Message', '')}")


if __name__ == "__main__":
    main()
