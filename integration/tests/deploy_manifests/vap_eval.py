"""Evaluates a ValidatingAdmissionPolicy's CEL the way the API server applies it, for the
deployment tests: reads {"policy": <policy object>, "cases": [{"name", "request", "object",
"oldObject"}]} as JSON on stdin and prints one verdict per case as JSON on stdout:
{"name", "matched", "allowed", "denials": [message, ...]}.

Covered: matchConstraints.resourceRules (group, resource, operation), matchConditions (all
must hold), variables (in order, visible as `variables.<name>`), validations (message or
messageExpression), failurePolicy (an expression that fails to evaluate counts as a denial
under Fail). The CEL itself is cel-python's, the language the API server runs; Kubernetes'
library extensions are not needed by the policy tested.
"""

import json
import sys

import celpy


def to_cel(value):
    return celpy.json_to_cel(value)


def rule_matches(rule, request):
    resource = request.get("resource", {})
    groups = rule.get("apiGroups", [])
    resources = rule.get("resources", [])
    operations = rule.get("operations", [])
    return (
        ("*" in groups or resource.get("group", "") in groups)
        and ("*" in resources or resource.get("resource") in resources)
        and ("*" in operations or request.get("operation") in operations)
    )


def evaluate(policy, case):
    spec = policy["spec"]
    env = celpy.Environment()
    request = case["request"]
    verdict = {"name": case["name"], "matched": False, "allowed": True, "denials": []}
    rules = spec.get("matchConstraints", {}).get("resourceRules", [])
    if not any(rule_matches(r, request) for r in rules):
        return verdict
    fail = spec.get("failurePolicy", "Fail") == "Fail"
    activation = {
        "request": to_cel(request),
        "object": to_cel(case.get("object")),
        "oldObject": to_cel(case.get("oldObject")),
    }

    def run(expr):
        return env.program(env.compile(expr)).evaluate(activation)

    for condition in spec.get("matchConditions", []):
        try:
            held = run(condition["expression"])
        except Exception as e:  # noqa: BLE001 - an evaluation error is a verdict here
            held = e
        if isinstance(held, Exception) or isinstance(held, celpy.CELEvalError):
            if fail:
                verdict.update(matched=True, allowed=False)
                verdict["denials"].append("matchCondition %s failed: %s" % (condition["name"], held))
            return verdict
        if not bool(held):
            return verdict
    verdict["matched"] = True
    variables = celpy.celtypes.MapType({})
    activation["variables"] = variables
    for variable in spec.get("variables", []):
        variables[celpy.celtypes.StringType(variable["name"])] = run(variable["expression"])
    for validation in spec.get("validations", []):
        try:
            result = run(validation["expression"])
        except Exception as e:  # noqa: BLE001
            result = e
        if isinstance(result, (Exception, celpy.CELEvalError)):
            if fail:
                verdict["allowed"] = False
                verdict["denials"].append("error: %s" % (result,))
            continue
        if not bool(result):
            verdict["allowed"] = False
            if "messageExpression" in validation:
                message = str(run(validation["messageExpression"]))
            else:
                message = validation.get("message", validation["expression"])
            verdict["denials"].append(message)
    return verdict


def main():
    given = json.load(sys.stdin)
    print(json.dumps([evaluate(given["policy"], case) for case in given["cases"]]))


if __name__ == "__main__":
    main()
