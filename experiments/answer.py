"""Answer SQuAD v1.1 questions with an LLM; cache predictions for the experiments that follow.

    python experiments/answer.py --limit 200

Writes `predictions.jsonl` (append-only; an interrupted run resumes without duplicates) and
`summary.json` under --out, and prints EM/F1, the number answered correctly and examples/s.
"""

from gradsae_nn.cli import script

main = script("answer", __doc__)

if __name__ == "__main__":
    main.run()
