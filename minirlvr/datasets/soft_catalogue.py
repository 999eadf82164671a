"""The catalogue of soft constraints `python run.py data build` adds to seed tasks: requirements on tone, style,
audience, persona, focus and structure that no code can check, so only a judge can score them.

Each entry is (kind, text). A built prompt carries at most one entry of each kind: two of the same kind would
often contradict each other ("formal" and "playful"), and the builder should not make contradictions on purpose
(the critic catches the ones that arise anyway, e.g. a playful tone on a eulogy). Texts are complete sentences
that end with a period and contain no newline: refine.one_soft removes a dropped soft constraint from the prompt
by finding " " + its text.

Written for this kit. This file only lists texts; build_data.py draws from it.
"""

SOFT_CATALOGUE = [
    # tone
    ("tone", "Use a warm, friendly tone."),
    ("tone", "Keep the tone calm and reassuring."),
    ("tone", "Write in an enthusiastic, upbeat tone."),
    ("tone", "Use a formal, professional tone."),
    ("tone", "Keep the tone light and gently humorous."),
    ("tone", "Adopt a serious, respectful tone."),
    ("tone", "Sound confident but never arrogant."),
    ("tone", "Use an encouraging tone, as if cheering the reader on."),
    ("tone", "Keep the tone neutral and matter-of-fact."),
    # style
    ("style", "Write in plain language and avoid jargon."),
    ("style", "Use vivid sensory details."),
    ("style", "Prefer short, punchy sentences."),
    ("style", "Write in a conversational style, as if talking to a friend."),
    ("style", "Use at least one concrete, everyday example."),
    ("style", "Include a fitting metaphor or comparison."),
    ("style", "Write in an elegant, slightly old-fashioned style."),
    ("style", "Be concise: say only what is needed."),
    ("style", "Use the active voice wherever possible."),
    ("style", "Make the writing feel personal rather than generic."),
    # audience
    ("audience", "Write it for a curious ten-year-old."),
    ("audience", "Address the response to complete beginners."),
    ("audience", "Write it for busy professionals who skim."),
    ("audience", "Aim the response at retired readers with plenty of time."),
    ("audience", "Write for someone who is anxious about the topic."),
    ("audience", "Assume the reader is an expert and skip the basics."),
    ("audience", "Write for a reader whose first language is not English."),
    ("audience", "Address the response to a group of teenagers."),
    # persona
    ("persona", "Answer as a patient teacher would."),
    ("persona", "Respond in the voice of an experienced travel guide."),
    ("persona", "Write as a friendly neighbour sharing what they know."),
    ("persona", "Answer as a cautious scientist who separates facts from guesses."),
    ("persona", "Respond as a cheerful sports coach."),
    ("persona", "Write in the voice of a thoughtful librarian."),
    ("persona", "Answer as a practical grandparent with long experience."),
    ("persona", "Respond as a calm customer-service agent."),
    # focus
    ("focus", "Focus on practical steps the reader can take today."),
    ("focus", "Concentrate on the costs involved."),
    ("focus", "Emphasise safety above everything else."),
    ("focus", "Focus on the environmental side of the topic."),
    ("focus", "Highlight the most common mistakes and how to avoid them."),
    ("focus", "Put the emphasis on the feelings of the people involved."),
    ("focus", "Focus on what makes the topic surprising or little known."),
    ("focus", "Concentrate on the long-term consequences."),
    ("focus", "Keep the attention on the benefits for families."),
    # structure (judged: how the content is organised, not a countable format)
    ("structure", "Open with a one-sentence summary before giving any details."),
    ("structure", "End with a clear takeaway the reader can remember."),
    ("structure", "Move from the simplest points to the most complex ones."),
    ("structure", "Present both sides before giving a conclusion."),
    ("structure", "Start with a short anecdote that leads into the main point."),
    ("structure", "Finish with a question that invites the reader to reflect."),
    ("structure", "Put the single most important point first."),
    ("structure", "Follow a clear beginning, middle and end."),
]

KINDS = ("tone", "style", "audience", "persona", "focus", "structure")
