"""Generate a realistic, deterministic CloudTrail archive for benchmarking ``detect``.

The archive looks like what a management-events trail delivers to S3: gzipped, compact
``{"Records":[...]}`` files of a few hundred to a few thousand records, under
``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/``. Most records are noise (EC2,
STS, KMS, IAM, SSM, Lambda, ...), a few percent are S3 management calls that no rule
reads (GetBucketAcl, PutBucketTagging, ...), and a small share of files hold one to three
watched calls (PutBucketPolicy, PutBucketAcl, Block Public Access changes, CreateBucket, ...).

``profile`` (``--profile``) changes the mix: ``sparse`` is the archive above; ``dense`` puts
about 1% watched calls in every file; ``data-events`` adds about 30% S3 data events
(GetObject/PutObject, a few PutObject with an ``x-amz-acl`` header) to ``dense``.

The same seed gives byte-identical files; an archive already generated with the same
parameters is reused (see ``.manifest.json``).

    python -m benchmarks.gen_archive --events 1000000 --out benchmarks/out/archive
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from multiprocessing import Pool
from typing import Any

FORMAT_VERSION = 1
# sparse: today's archive (a few files hold one to three watched calls);
# dense: about 1% watched calls in every file;
# data-events: dense plus about 30% S3 data events (GetObject/PutObject), a few PutObject with ACL headers.
PROFILES = ("sparse", "dense", "data-events")
DENSE_SHARE = 0.01  # share of records that are watched calls in every file (dense, data-events)
DATA_EVENTS_SHARE = 0.30  # share of records that are S3 data events (data-events)
ACL_HEADER_SHARE = 0.002  # share of PutObject data events that carry an x-amz-acl header
ACCOUNT = "318473062105"
REGIONS = ("us-east-1", "eu-west-1", "eu-central-1")
FILES_WATCHED_SHARE = 0.08  # share of files that hold watched events
S3_NOISE_SHARE = 0.04  # share of records that are unwatched S3 management calls

USERS = [f"arn:aws:iam::{ACCOUNT}:user/{n}" for n in ("alice", "bob", "ci-deployer", "carol", "ops-bot")]
ROLES = [
    f"arn:aws:sts::{ACCOUNT}:assumed-role/{r}/{s}"
    for r, s in (
        ("AWSServiceRoleForConfig", "AWSConfig-Describe"),
        ("data-pipeline", "botocore-session-1710231002"),
        ("eks-node-group", "i-0a1b2c3d4e5f60718"),
        ("terraform", "aws-go-sdk-1710231877"),
        ("AWSReservedSSO_Admin_0123456789abcdef", "carol@example.com"),
    )
]
USER_AGENTS = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22 prompt/off "
    "command/ec2.describe-instances",
    "Boto3/1.34.64 md/Botocore#1.34.64 ua/2.0 os/linux#6.5.0 md/arch#x86_64 lang/python#3.11.8 "
    "cfg/retry-mode#legacy",
    "config.amazonaws.com",
    "[APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.41.0]",
    "aws-sdk-go-v2/1.25.3 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.150.1",
    "AWS Internal",
)
IPS = ("203.0.113.17", "198.51.100.42", "192.0.2.200", "AWS Internal", "config.amazonaws.com")
BUCKETS = ("acme-logs-prod", "acme-static-site", "acme-data-lake-raw", "acme-tfstate", "acme-backups-eu")

NOISE: list[tuple[str, str, int]] = [  # (eventSource, eventName, weight)
    ("ec2.amazonaws.com", "DescribeInstances", 12),
    ("ec2.amazonaws.com", "DescribeRouteTables", 6),
    ("ec2.amazonaws.com", "DescribeSecurityGroups", 6),
    ("ec2.amazonaws.com", "DescribeVpcs", 4),
    ("ec2.amazonaws.com", "DescribeSubnets", 4),
    ("ec2.amazonaws.com", "DescribeNetworkInterfaces", 4),
    ("sts.amazonaws.com", "AssumeRole", 10),
    ("sts.amazonaws.com", "GetCallerIdentity", 4),
    ("kms.amazonaws.com", "Decrypt", 12),
    ("kms.amazonaws.com", "GenerateDataKey", 6),
    ("iam.amazonaws.com", "GetRole", 3),
    ("iam.amazonaws.com", "ListAttachedRolePolicies", 3),
    ("iam.amazonaws.com", "GetPolicyVersion", 2),
    ("ssm.amazonaws.com", "GetParameter", 5),
    ("ssm.amazonaws.com", "UpdateInstanceInformation", 5),
    ("secretsmanager.amazonaws.com", "GetSecretValue", 3),
    ("lambda.amazonaws.com", "ListFunctions20150331", 2),
    ("logs.amazonaws.com", "CreateLogStream", 3),
    ("monitoring.amazonaws.com", "DescribeAlarms", 2),
    ("config.amazonaws.com", "PutEvaluations", 2),
]
S3_NOISE = (
    "GetBucketAcl",
    "GetBucketPolicy",
    "GetBucketLocation",
    "ListBuckets",
    "GetBucketPublicAccessBlock",
    "GetBucketPolicyStatus",
    "GetBucketEncryption",
    "GetBucketVersioning",
    "PutBucketTagging",
    "PutBucketVersioning",
    "PutBucketEncryption",
    "PutObjectLockConfiguration",
    "DeleteBucketPolicy",
)
# Watched calls, public and benign alike; the classifier decides which they are.
PUBLIC_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::B/*"}
    ],
}
PRIVATE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::B/AWSLogs/*",
        }
    ],
}
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def _watched_params(rng: random.Random, bucket: str) -> tuple[str, dict[str, Any]]:
    choice = rng.randrange(8)
    host = f"{bucket}.s3.amazonaws.com"
    if choice == 0:
        policy = json.loads(json.dumps(PUBLIC_POLICY).replace("arn:aws:s3:::B", f"arn:aws:s3:::{bucket}"))
        return "PutBucketPolicy", {"bucketName": bucket, "Host": host, "policy": "", "bucketPolicy": policy}
    if choice == 1:
        policy = json.loads(json.dumps(PRIVATE_POLICY).replace("arn:aws:s3:::B", f"arn:aws:s3:::{bucket}"))
        return "PutBucketPolicy", {"bucketName": bucket, "Host": host, "policy": "", "bucketPolicy": policy}
    if choice == 2:
        return "PutBucketAcl", {"bucketName": bucket, "Host": host, "acl": "", "x-amz-acl": "public-read"}
    if choice == 3:
        grant = {"Grantee": {"xsi:type": "Group", "URI": ALL_USERS}, "Permission": "READ"}
        body = {"AccessControlList": {"Grant": grant}, "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/"}
        return "PutBucketAcl", {"bucketName": bucket, "Host": host, "acl": "", "AccessControlPolicy": body}
    if choice == 4:
        flags = {k: rng.random() < 0.5 for k in ("BlockPublicAcls", "IgnorePublicAcls")}
        flags |= {"BlockPublicPolicy": True, "RestrictPublicBuckets": True}
        config = {"xmlns": "http://s3.amazonaws.com/doc/2006-03-01/", **flags}
        return "PutBucketPublicAccessBlock", {
            "bucketName": bucket,
            "Host": host,
            "publicAccessBlock": "",
            "PublicAccessBlockConfiguration": config,
        }
    if choice == 5:
        return "DeleteBucketPublicAccessBlock", {"bucketName": bucket, "Host": host, "publicAccessBlock": ""}
    if choice == 6:
        return "CreateBucket", {"bucketName": bucket, "Host": host, "x-amz-acl": "private"}
    rule = {"ObjectOwnership": rng.choice(("ObjectWriter", "BucketOwnerEnforced"))}
    return "PutBucketOwnershipControls", {
        "bucketName": bucket,
        "Host": host,
        "ownershipControls": "",
        "OwnershipControls": {"Rule": rule},
    }


def _uuid4(rng: random.Random) -> str:
    parts = [rng.getrandbits(bits) for bits in (32, 16, 12, 16, 48)]
    return "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}".format(*parts)


def _record(rng: random.Random, when: datetime, region: str, source: str, name: str) -> dict[str, Any]:
    role = rng.random() < 0.6
    arn = rng.choice(ROLES if role else USERS)
    user_agent = rng.choice(USER_AGENTS)
    identity: dict[str, Any] = {
        "type": "AssumedRole" if role else "IAMUser",
        "principalId": f"AROA{rng.getrandbits(64):016X}"[:21] + (":session" if role else ""),
        "arn": arn,
        "accountId": ACCOUNT,
        "accessKeyId": f"ASIA{rng.getrandbits(64):016X}",
    }
    if role:
        identity["sessionContext"] = {
            "sessionIssuer": {
                "type": "Role",
                "principalId": identity["principalId"].split(":")[0],
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{arn.split('/')[1]}",
                "accountId": ACCOUNT,
                "userName": arn.split("/")[1],
            },
            "webIdFederationData": {},
            "attributes": {
                "creationDate": (when - timedelta(minutes=rng.randrange(60))).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "mfaAuthenticated": "false",
            },
        }
    else:
        identity["userName"] = arn.rsplit("/", 1)[1]
    params: Any
    response: Any = None
    extra: dict[str, Any] = {}
    service = source.split(".")[0]
    if source == "s3.amazonaws.com":
        bucket = rng.choice(BUCKETS)
        params = {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", name[3:].lower(): ""}
        extra["additionalEventData"] = {
            "SignatureVersion": "SigV4",
            "CipherSuite": "ECDHE-RSA-AES128-GCM-SHA256",
            "bytesTransferredIn": 0,
            "AuthenticationMethod": "AuthHeader",
            "x-amz-id-2": f"{rng.getrandbits(256):064x}",
            "bytesTransferredOut": rng.randrange(100, 2000),
        }
        extra["resources"] = [
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}
        ]
    elif name.startswith("Describe") or name.startswith("List"):
        params = {"maxResults": 1000, "filterSet": {"items": [{"name": "vpc-id", "valueSet": {}}]}}
    elif name == "Decrypt" or name == "GenerateDataKey":
        params = {
            "encryptionContext": {
                "aws:s3:arn": f"arn:aws:s3:::{rng.choice(BUCKETS)}/data/{rng.getrandbits(40):x}"
            },
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }
        extra["resources"] = [
            {
                "accountId": ACCOUNT,
                "type": "AWS::KMS::Key",
                "ARN": f"arn:aws:kms:{region}:{ACCOUNT}:key/{rng.getrandbits(128):032x}",
            }
        ]
    elif name == "AssumeRole":
        params = {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/data-pipeline", "roleSessionName": "session"}
        response = {
            "credentials": {
                "accessKeyId": f"ASIA{rng.getrandbits(64):016X}",
                "sessionToken": f"{rng.getrandbits(512):0128x}",
                "expiration": "Mar 12, 2024, 9:30:02 AM",
            },
            "assumedRoleUser": {"assumedRoleId": "AROAEXAMPLE:session", "arn": arn},
        }
    elif name == "GetPolicyVersion":
        # IAM policies quote S3 actions: bytes a careless prefilter would mistake for a watched call.
        params = {"policyArn": f"arn:aws:iam::{ACCOUNT}:policy/app", "versionId": "v3"}
        response = {
            "policyVersion": {
                "document": "%7B%22Statement%22%3A%5B%7B%22Action%22%3A%22s3%3APutObject%22%7D%5D%7D",
                "versionId": "v3",
                "isDefaultVersion": True,
            }
        }
    else:
        params = {"name": f"/{service}/app/{rng.getrandbits(32):x}", "withDecryption": True}
    record: dict[str, Any] = {
        "eventVersion": "1.09" if source != "s3.amazonaws.com" else "1.10",
        "userIdentity": identity,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": rng.choice(IPS),
        "userAgent": user_agent,
        "requestParameters": params,
        "responseElements": response,
    }
    record.update(extra)
    record.update(
        {
            "requestID": f"{rng.getrandbits(64):016X}",
            "eventID": _uuid4(rng),
            "readOnly": name.startswith(("Describe", "Get", "List")),
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
            "tlsDetails": {
                "tlsVersion": "TLSv1.3",
                "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": f"{service}.{region}.amazonaws.com",
            },
        }
    )
    return record


def _file_sizes(total: int, rng: random.Random) -> list[int]:
    """Records per file: log-uniform between 150 and 4000, adding up to ``total``."""
    sizes: list[int] = []
    left = total
    while left > 0:
        size = min(left, int(math.exp(rng.uniform(math.log(150), math.log(4000)))))
        sizes.append(size)
        left -= size
    return sizes


def _data_event(rng: random.Random, record: dict[str, Any]) -> None:
    """Turn ``record`` into an S3 data event: GetObject or PutObject, rarely with an ACL header."""
    bucket = rng.choice(BUCKETS)
    name = rng.choice(("GetObject", "PutObject"))
    params: dict[str, Any] = {
        "bucketName": bucket,
        "Host": f"{bucket}.s3.amazonaws.com",
        "key": f"data/{rng.getrandbits(40):x}/part-{rng.randrange(1000):04d}.parquet",
    }
    if name == "PutObject" and rng.random() < ACL_HEADER_SHARE:
        params["x-amz-acl"] = rng.choice(("public-read", "private", "bucket-owner-full-control"))
    record.update(
        eventSource="s3.amazonaws.com",
        eventName=name,
        requestParameters=params,
        responseElements=None,
        readOnly=name == "GetObject",
        managementEvent=False,
        eventCategory="Data",
        resources=[
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{params['key']}"},
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
    )


def _write_file(job: tuple[str, int, int, int, str]) -> tuple[str, int, int, int]:
    """Write file number ``index``; returns (path, records, watched records, decompressed bytes)."""
    out_dir, seed, index, size, profile = job
    rng = random.Random(seed * 1_000_003 + index)
    region = REGIONS[index % len(REGIONS)]
    start = datetime(2024, 3, 1, tzinfo=UTC) + timedelta(minutes=5 * index)
    weights = [w for _, _, w in NOISE]
    records = []
    for i in range(size):
        when = start + timedelta(seconds=i * 300 / max(size, 1))
        if rng.random() < S3_NOISE_SHARE:
            records.append(_record(rng, when, region, "s3.amazonaws.com", rng.choice(S3_NOISE)))
        else:
            source, name, _ = rng.choices(NOISE, weights)[0]
            records.append(_record(rng, when, region, source, name))
    if profile == "data-events":
        for slot in rng.sample(range(size), int(size * DATA_EVENTS_SHARE)):
            _data_event(rng, records[slot])
    if profile == "sparse":
        calls = rng.randint(1, 3) if rng.random() < FILES_WATCHED_SHARE else 0
    else:
        calls = max(1, round(size * DENSE_SHARE))
    if calls:
        for _ in range(calls):
            slot = rng.randrange(size)
            record = records[slot]
            bucket = rng.choice(BUCKETS)
            name, params = _watched_params(rng, bucket)
            record.update(eventSource="s3.amazonaws.com", eventName=name, requestParameters=params)
            record["readOnly"] = False
    watched = sum(
        1
        for r in records
        if r["eventSource"] == "s3.amazonaws.com"
        and r["eventName"] not in (*S3_NOISE, "GetObject", "PutObject")
    )
    stamp = start.strftime("%Y%m%dT%H%MZ")
    folder = os.path.join(out_dir, "AWSLogs", ACCOUNT, "CloudTrail", region, start.strftime("%Y/%m/%d"))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{ACCOUNT}_CloudTrail_{region}_{stamp}_{index:06d}.json.gz")
    body = json.dumps({"Records": records}, separators=(",", ":")).encode()
    # mtime=0: the same seed gives byte-identical files.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(body)
    return os.path.relpath(path, out_dir), size, watched, len(body)


def generate(
    out_dir: str, events: int, seed: int = 7, jobs: int | None = None, profile: str = "sparse"
) -> dict[str, Any]:
    """Create (or reuse) the archive in ``out_dir``; returns its manifest (file paths relative to it).

    ``watched`` in the manifest counts the watched management calls placed (not data events).
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; one of {', '.join(PROFILES)}")
    # Hidden, so that `detect` walking the archive skips it.
    manifest_path = os.path.join(out_dir, ".manifest.json")
    wanted: dict[str, Any] = {"format": FORMAT_VERSION, "events": events, "seed": seed}
    if profile != "sparse":  # sparse manifests stay as they were, so cached archives are reused
        wanted["profile"] = profile
    if os.path.exists(manifest_path):
        with open(manifest_path) as handle:
            manifest = json.load(handle)
        if {k: manifest.get(k) for k in wanted} == wanted and all(
            os.path.exists(os.path.join(out_dir, p)) for p in manifest["files"]
        ):
            return manifest
    sizes = _file_sizes(events, random.Random(seed))
    os.makedirs(out_dir, exist_ok=True)
    job_list = [(out_dir, seed, index, size, profile) for index, size in enumerate(sizes)]
    with Pool(jobs or os.cpu_count() or 1) as pool:
        written = pool.map(_write_file, job_list, chunksize=8)
    manifest = {
        **wanted,
        "files": [path for path, *_ in written],
        "records": sum(r for _, r, _, _ in written),
        "watched": sum(w for _, _, w, _ in written),
        "files_with_watched": sum(1 for _, _, w, _ in written if w),
        "decompressed_bytes": sum(b for *_, b in written),
    }
    with open(manifest_path, "w") as handle:
        json.dump(manifest, handle)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", choices=PROFILES, default="sparse")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out", "archive-1000000-7"))
    args = parser.parse_args(argv)
    manifest = generate(args.out, args.events, args.seed, profile=args.profile)
    summary = {k: v for k, v in manifest.items() if k != "files"}
    print(json.dumps({**summary, "file_count": len(manifest["files"])}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
