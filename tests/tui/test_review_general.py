"""The review on general prompts: the forgetting guard's probe set, chosen in the setup by keys
of the form, generated and judged blind like any prompt set (with a fake generator)."""

from __future__ import annotations

from test_review_screen import FakeGenerator, open_review, review_app, wait_for
from textual.widgets import Input, Select

from core.data import read_prompts
from core.review import GENERAL_SAMPLE


async def test_general_prompts_are_offered_and_reviewed_without_references(tmp_path):
    generator = FakeGenerator()
    app = review_app(tmp_path, generator)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_review(pilot)
        prompts = screen.query_one("#review-prompts", Select)
        offered = [value for _, value in prompts._options]
        assert ("sample", GENERAL_SAMPLE) in offered
        for selector, value in (("#review-model-a", "A-model"), ("#review-model-b", "B-model")):
            select = screen.query_one(selector, Select)
            select.set_options([*((label, v) for label, v in select._options if v != select.BLANK),
                                (value, ("path", value))])
            select.value = ("path", value)
        prompts.value = ("sample", GENERAL_SAMPLE)
        screen.query_one("#review-limit", Input).value = "5"
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: screen.review is not None and len(screen.review.items) == 5)
        review = screen.review
        general = read_prompts(GENERAL_SAMPLE)[0][:5]
        assert [p.messages for p in review.prompts] == general
        assert all(p.reference is None for p in review.prompts)
        assert [c[-1]["content"] for c in generator.requests[-1].conversations] == \
            [p[-1]["content"] for p in general]
        await pilot.press("l")  # judged like any set
        await wait_for(pilot, lambda: len(review.verdicts) == 1)
