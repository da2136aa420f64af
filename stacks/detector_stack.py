"""One account's detector: the whole deployment behind ``cdktf deploy <name>``.

Reading order is deployment order: providers, key, trail, dead-letter queue, alerting, the
review queue, the response function, the scheduled sweep, the exposure review and the alarms,
then the rules that feed the function.
"""

from __future__ import annotations

from handlers.detection.event_patterns import RULES
from stacks.alerting import Alerting, SweepWatch
from stacks.bindings import Construct, LocalBackend, S3Backend, TerraformOutput, TerraformStack
from stacks.config import AccountConfig, StateConfig
from stacks.dead_letters import DeadLetterQueue
from stacks.encryption_key import EncryptionKey
from stacks.providers import ProviderOptions, build_providers
from stacks.response_function import ResponseFunction
from stacks.review import ReviewFunction, ReviewQueue
from stacks.rules import ExposureRules, rule_arn
from stacks.sweep import SweepFunction
from stacks.trail import Trail, trail_arn


def state_backend(stack: TerraformStack, name: str, state: StateConfig) -> LocalBackend | S3Backend:
    """The stack's Terraform backend, from the config's ``[state]`` table."""
    if state.backend == "s3":
        assert state.bucket and state.region, "stacks.config.parse_state requires both for s3"
        backend = S3Backend(
            stack, bucket=state.bucket, key=state.key(name), region=state.region, encrypt=True
        )
        # S3-native locking (Terraform >= 1.10, no DynamoDB table); cdktf 0.21's binding predates it.
        backend.add_override("use_lockfile", True)
        return backend
    # cdktf's default writes the synthesizing machine's absolute path into the config; this
    # is the same place (the repo root, for the default cdktf.out), relative to the stack dir.
    return LocalBackend(stack, path=f"../../../terraform.{name}.tfstate")


class DetectorStack(TerraformStack):
    """CloudTrail (optional), EventBridge rules, the response function, alerting and alarms."""

    def __init__(
        self,
        scope: Construct,
        account: AccountConfig,
        options: ProviderOptions | None = None,
        state: StateConfig | None = None,
    ) -> None:
        super().__init__(scope, account.name)
        options = options or ProviderOptions()
        state_backend(self, account.name, state or StateConfig())
        providers = build_providers(self, account, options)
        key = EncryptionKey(
            self,
            "encryption",
            account=account,
            trail_arn=trail_arn(account) if account.create_trail else None,
        )
        key_arn = key.key.arn
        if account.create_trail:
            Trail(
                self, "trail", account=account, kms_key_arn=key_arn if account.trail_kms_encryption else None
            )
        dead_letters = DeadLetterQueue(
            self,
            "dead-letters",
            account=account,
            kms_key_arn=key_arn,
            source_rule_arns=[rule_arn(account, rule, account.home_region) for rule in RULES],
        )
        alerting = Alerting(self, "alerting", account=account, kms_key_arn=key_arn)
        reviews = (
            ReviewQueue(self, "review-queue", account=account, kms_key_arn=key_arn)
            if account.review_enabled
            else None
        )
        review_url, review_arn = (reviews.queue.url, reviews.queue.arn) if reviews else (None, None)
        response = ResponseFunction(
            self,
            "response",
            account=account,
            kms_key_arn=key_arn,
            topic_arn=alerting.topic.arn,
            dead_letter_queue_arn=dead_letters.queue.arn,
            review_queue_url=review_url,
            review_queue_arn=review_arn,
        )
        alerting.allow_publisher(response.role.arn)
        sweep = None
        if account.sweep_enabled:
            sweep = SweepFunction(
                self,
                "sweep",
                account=account,
                kms_key_arn=key_arn,
                topic_arn=alerting.topic.arn,
                table_arn=response.table.arn,
                table_name=response.table.name,
                review_queue_url=review_url,
                review_queue_arn=review_arn,
            )
        review = None
        if reviews is not None:
            review = ReviewFunction(
                self,
                "review",
                account=account,
                queue=reviews,
                kms_key_arn=key_arn,
                topic_arn=alerting.topic.arn,
                table_arn=response.table.arn,
                table_name=response.table.name,
            )
        alerting.add_alarms(
            response.function.function_name,
            dead_letters.queue.name,
            SweepWatch(account.sweep_interval_minutes, sweep.dead_letters.name) if sweep else None,
            reviews.dead_letters.name if reviews else None,
        )
        ExposureRules(
            self,
            "rules",
            account=account,
            providers=providers,
            function_arn=response.function.arn,
            function_name=response.function.function_name,
            dead_letter_queue_arn=dead_letters.queue.arn,
            kms_key_arn=key_arn,
            kms_key_id=key.key.key_id,
        )
        TerraformOutput(self, "alert_topic_arn", value=alerting.topic.arn)
        if alerting.chat_topic is not None:
            TerraformOutput(self, "chat_topic_arn", value=alerting.chat_topic.arn)
        TerraformOutput(self, "response_function_name", value=response.function.function_name)
        TerraformOutput(self, "dead_letter_queue_url", value=dead_letters.queue.url)
        if sweep is not None:
            TerraformOutput(self, "sweep_function_name", value=sweep.function.function_name)
        if review is not None:
            TerraformOutput(self, "review_function_name", value=review.function.function_name)
