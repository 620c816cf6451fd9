"""Octopus's variable substitution (Octostache's syntax and behaviour), pure and standard library only.

    #{Name}                          a variable; an unknown one is left as written
    #{Name | Trim | ToUpper}         filters, applied left to right
    #{Server[#{Continent}]}          references inside an index
    #{Json.Key} #{Json[0].Key}       JSON-path access into a JSON value
    #{if A == "b"}…#{else}…#{/if}    conditionals (also #{unless}, `!=`, truthiness)
    #{each x in List}…#{/each}       loops over comma-separated values, JSON arrays and objects, and
                                     indexed collections (`Octopus.Action[Name].…`), with
                                     Octopus.Template.Each.First / Last / Index
    ##{Name}                         an escaped, literal `#{Name}`

Variable values may themselves hold references; they are evaluated when used, and a cycle raises
`SubstitutionError` naming it. A value derived from a sensitive value (a filter over it, a JSON path
into it, an item of it) is recorded in `derived_sensitive`, so callers can mask it too.

The package: parser.py turns a template into nodes, values.py reads symbols and JSON paths, evaluator.py evaluates
nodes against a VariableDictionary, filters.py holds the filters (`| ToUpper`, `| Format`…).
"""

from deployments.services.octostache.evaluator import (
    SubstitutionError,
    VariableDictionary,
    evaluate,
    is_truthy,
)

__all__ = ["SubstitutionError", "VariableDictionary", "is_truthy", "evaluate"]
