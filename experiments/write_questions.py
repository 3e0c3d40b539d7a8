"""Questions an instruction model writes about SQuAD *train* paragraphs: the prompts of the SAE training corpus.

    python experiments/write_questions.py --paragraphs ../shared/data/squad/squad-train-v1.1.paragraphs.jsonl.gz \
        --n 5000 --out questions.jsonl

One question per paragraph of a seeded shuffle, appended to --out as written (rerun to resume); a paragraph
whose answer asks nothing is recorded as such and skipped by train_sae.py. Never uses a dev question.
"""

from gradsae_nn.cli import script

main = script("write_questions", __doc__)

if __name__ == "__main__":
    main.run()
