"""The report: ``report front-page``, the workflow report's front page."""

from __future__ import annotations

from dnadiff.cli.common import config, verb, verb_group, write_outputs


def register(sub) -> None:
    """Add ``report`` and its pages to the parser."""
    from dnadiff.report import FILES

    rep = verb_group(sub, "report", "the workflow report's pages")
    q = verb(rep, "front-page", "a run's headline numbers as the report's front page "
             "(reStructuredText): test bits/base beside Markov and AR, sample scores beside "
             "Markov and real windows, the best downstream method of each task, the SNV-class "
             "AUROCs; each input optional", front_page, threads=False, out=("out",),
             inputs=tuple(FILES))
    for dest, what in FILES.items():
        q.add_argument("--" + dest.replace("_", "-"), help=what)
    q.add_argument("--out", required=True, help="the page (.rst)")


def front_page(args) -> None:
    """``dnadiff report front-page``."""
    from dnadiff.report import FILES
    from dnadiff.report import front_page as page

    text = page(config(args), {dest: getattr(args, dest) for dest in FILES})
    write_outputs({args.out: ("text", text)})
