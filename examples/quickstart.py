"""Quickstart on the embedded default: local Redis + SQLite under ./lshrs_data, no servers to set up."""

from lshrs import LSHRS

DOCS = [
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris.",
    "Photosynthesis is the process plants use to turn light into chemical energy.",
    "Python is a programming language that emphasises code readability.",
    "Mount Everest, in the Himalayas, is Earth's highest mountain above sea level.",
    "The violin is a wooden string instrument, usually played with a bow.",
    "The Great Barrier Reef off Australia is the world's largest coral reef system.",
    "Alan Turing formalised the concepts of algorithm and computation.",
    "The Amazon is the largest tropical rainforest on Earth.",
]


def main() -> None:
    lsh = LSHRS(name="quickstart")
    ids = lsh.ingest(DOCS, ids=range(1, len(DOCS) + 1), metadata=[{"n": i} for i in range(len(DOCS))])
    print(f"indexed {len(ids)} documents: {lsh}")
    for question in ["Which plants make energy from sunlight?", "tallest mountain", "who invented computing?"]:
        print(f"\n? {question}")
        for hit in lsh.query(question, top_k=2):
            print(f"  {hit.score:.3f}  [{hit.id}] {hit.text}")


if __name__ == "__main__":
    main()
