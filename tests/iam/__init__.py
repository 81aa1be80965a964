"""Least privilege, proven by simulation (issue 10, findings 12 and 13).

- ``recorder``: a pytest plugin that records every AWS call each FUNCTION makes during the suite
  (botocore ``before-call`` hooks), with the context keys IAM would evaluate;
- ``template``: the synthesized identity policies, secret resource policies and key policy, with
  the CloudFormation intrinsics resolved to concrete ARNs (account 123456789012, us-east-1);
- ``simulate``: evaluates requests against those policies with ``@cloud-copilot/iam-simulate``
  (Node, test-time only: ``package.json`` here, installed by ``make iam-simulator``);
- ``forbidden``: what must be denied.
"""
