"""The optional AWS WAF web ACL in front of the API stage (``waf_enabled`` in cdk.json).

Two rules: the AWS managed common rule set (OWASP-style request inspection) and a per-IP rate
limit. Sampled requests are off and no WAF logging is configured on purpose: a sampled request
shows the request line, which holds an invitation token (``/connect/{invitation}``) or the LwA
code and state (``/callback?code=…&state=…``). CloudWatch metrics (counts only) stay on.
"""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
RATE_RULE = "RateLimitPerIp"
RATE_WINDOW_SECONDS = 300


def _visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True,
        metric_name=metric_name,
        sampled_requests_enabled=False,
    )


class ApiFirewall(Construct):
    """A regional web ACL associated with ``stage``; ``metric_name`` prefixes its metrics."""

    def __init__(
        self, scope: Construct, construct_id: str, *, stage: apigw.Stage, rate_limit: int, metric_name: str
    ) -> None:
        super().__init__(scope, construct_id)
        self.metric_name = metric_name
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=metric_name,  # CloudWatch's WAF metrics name the ACL (dimension WebACL)
            description="adsauth: AWS managed common rules and a per-IP rate limit",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(metric_name),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name=COMMON_RULE_SET,
                    priority=0,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS", name=COMMON_RULE_SET
                        )
                    ),
                    visibility_config=_visibility(f"{metric_name}-{COMMON_RULE_SET}"),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name=RATE_RULE,
                    priority=1,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP",
                            limit=rate_limit,
                            evaluation_window_sec=RATE_WINDOW_SECONDS,
                        )
                    ),
                    visibility_config=_visibility(f"{metric_name}-{RATE_RULE}"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self, "Association", resource_arn=stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
