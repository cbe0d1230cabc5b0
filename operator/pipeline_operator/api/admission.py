"""The ValidatingAdmissionPolicy that keeps a rollout command from being lost.

A command is the value of one annotation, so a client that overwrote a command the operator
had not read yet (``abort`` then ``promote`` from two clients, or a script) would lose it
without a trace. The apiserver refuses that: while ``status.lastCommand`` does not acknowledge
the annotation's value, an update may leave the value as it is or remove it, and only an
``abort`` may replace it (an abort wins over any pending command). Every other client gets the
refusal, with the pending command named, instead of a silent loss.

Generated with the CRD (``python -m pipeline_operator.api.crd``); needs Kubernetes 1.30+.
"""

from __future__ import annotations

from typing import Any

from pipeline_operator.api import v1alpha1 as api

NAME = f"{api.PLURAL}.{api.GROUP}-commands"
ABORT = "abort"  # the verb that may replace a pending command


def _annotation(obj: str) -> str:
    key = api.COMMAND_ANNOTATION
    return (
        f"has({obj}.metadata.annotations) && '{key}' in {obj}.metadata.annotations"
        f" ? {obj}.metadata.annotations['{key}'] : ''"
    )


def policy() -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": NAME},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [api.GROUP],
                        "apiVersions": ["*"],
                        "operations": ["UPDATE"],
                        "resources": [api.PLURAL],
                    }
                ]
            },
            "variables": [
                {"name": "pending", "expression": _annotation("oldObject")},
                {"name": "command", "expression": _annotation("object")},
                {
                    "name": "acknowledged",
                    "expression": "has(oldObject.status) && has(oldObject.status.lastCommand)"
                    " ? oldObject.status.lastCommand.command : ''",
                },
            ],
            "validations": [
                {
                    "expression": "variables.command == variables.pending"
                    " || variables.command == '' || variables.pending == ''"
                    " || variables.pending == variables.acknowledged"
                    f" || variables.command == '{ABORT}'"
                    f" || variables.command.startsWith('{ABORT}:')",
                    "messageExpression": "'command ' + variables.pending + ' is still pending:"
                    " wait until the operator acknowledges it in status.lastCommand (only abort"
                    f" may replace it; removing {api.COMMAND_ANNOTATION} drops it)'",
                }
            ],
        },
    }


def binding() -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": NAME},
        "spec": {"policyName": NAME, "validationActions": ["Deny"]},
    }
