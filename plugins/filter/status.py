# Copyright: (c) 2026, autoscale.hetzner contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The status report of a stack (the result of autoscale.hetzner.stack_info) as Markdown tables, Mermaid or
Graphviz DOT. The rendering lives in module_utils/status.py beside the data it renders. Documentation:
status_report.yml."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.autoscale.hetzner.plugins.module_utils.status import (
    render_dot, render_markdown, render_mermaid, render_tables)

FORMATS = {"tables": render_tables, "mermaid": render_mermaid, "dot": render_dot}


def status_report(status, output="markdown", svg=None):
    if not isinstance(status, dict) or "resources" not in status or "drift" not in status:
        raise AnsibleFilterError("status_report: the input must be the registered result of autoscale.hetzner.stack_info")
    if output == "markdown":
        return render_markdown(status, svg=svg)
    if output not in FORMATS:
        raise AnsibleFilterError("status_report: output=%r is not one of markdown, %s" % (output, ", ".join(FORMATS)))
    return FORMATS[output](status)


class FilterModule:
    def filters(self):
        return {"status_report": status_report}
