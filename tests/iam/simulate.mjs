// Reads a batch of IAM requests (JSON on stdin) and answers one verdict per request (JSON on
// stdout), with @cloud-copilot/iam-simulate: offline, test-time only (tests/iam/package.json).
//
// in:  {"policies": {name: document}, "requests": [{"id", "principal", "action", "resource",
//       "context": {key: value | [values]}, "identity": [policy names], "resourcePolicy": name | null}]}
// out: [{"id", "result": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "Error", "errors"?}]
import { runSimulation, runUnsafeSimulation } from '@cloud-copilot/iam-simulate'

// The validating simulation drops context keys it does not know for the action. It does not
// recognize kms:EncryptionContext:<key> (a variable key with a colon, not a slash); for those
// requests only, once the request has passed validation, the unvalidated engine evaluates it
// with the context as given. Any other dropped key is an error, never silently ignored.
const VARIABLE_KMS_KEY = /^kms:encryptioncontext:/i

// The unvalidated engine loads the resource policy without a name, which it then needs: hand it
// over as a (already validated) policy carrying its name.
function unvalidated(simulation) {
  const { resourcePolicy } = simulation
  if (!resourcePolicy) return simulation
  const named = { __validated: true, policyDocument: resourcePolicy, metadata: { name: 'resource' }, errors: [] }
  return { ...simulation, resourcePolicy: named }
}

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const batch = JSON.parse(Buffer.concat(chunks).toString('utf8'))

const verdicts = []
for (const request of batch.requests) {
  const simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.accountId },
      contextVariables: request.context,
    },
    identityPolicies: request.identity.map((name) => ({ name, policy: batch.policies[name] })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy ? batch.policies[request.resourcePolicy] : undefined,
  }
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error') {
    verdicts.push({ id: request.id, result: 'Error', errors: response.errors })
    continue
  }
  const results = response.resultType === 'single' ? [response.result] : response.results
  const ignored = [...new Set(results.flatMap((r) => r.ignoredContextKeys ?? []))]
  const unknown = ignored.filter((key) => !VARIABLE_KMS_KEY.test(key))
  if (unknown.length > 0) {
    verdicts.push({ id: request.id, result: 'Error', errors: { ignoredContextKeys: unknown } })
  } else if (ignored.length > 0) {
    verdicts.push({ id: request.id, result: runUnsafeSimulation(unvalidated(simulation), {}) })
  } else {
    verdicts.push({ id: request.id, result: response.overallResult })
  }
}
process.stdout.write(JSON.stringify(verdicts))
