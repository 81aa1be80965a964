"""The lifecycle event bus: the stack's own EventBridge bus, to which the callback, the dispatcher
and the refresh worker publish what happens to advertisers and their grants (source ``adsauth``),
for downstream rules to act on. The connect function publishes nothing."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from adsauth.events import SOURCE

from infra.constants import event_bus_name

EVENT_BUS_VARIABLE = "EVENT_BUS_NAME"


class LifecycleEventBus(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack_name = Stack.of(self).stack_name
        self.bus = events.EventBus(
            self,
            "Bus",
            event_bus_name=event_bus_name(stack_name),
            description=f"adsauth {stack_name}: advertiser and grant lifecycle events",
        )
        # It holds no state (events are delivered, not kept), like the queues and the alert topic:
        # it goes with the stack, and a redeploy under the same name creates it again.
        self.bus.apply_removal_policy(RemovalPolicy.DESTROY)

    def grant_publish(self, function: lambda_.Function) -> iam.Grant:
        """``events:PutEvents`` on this bus only, of events whose source is ``adsauth``
        (``events:source``: a function cannot pose as another system on the bus), and the
        variable naming it."""
        function.add_environment(EVENT_BUS_VARIABLE, self.bus.event_bus_name)
        return iam.Grant.add_to_principal(
            grantee=function,
            actions=["events:PutEvents"],
            resource_arns=[self.bus.event_bus_arn],
            # events:source is multivalued (one value per entry): every entry must be ours
            conditions={"ForAllValues:StringEquals": {"events:source": [SOURCE]}},
        )
