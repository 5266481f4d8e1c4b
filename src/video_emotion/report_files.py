"""The report's files and their caption files (workflow/report/): what the report stage writes and the workflow
declares. Kept apart from :mod:`video_emotion.report` so that reading the workflow imports no plotting library."""

# Figure file (PNG; an SVG with the same stem sits beside it) -> its caption file (workflow/report/).
FIGURES = {
    "headline.png": "headline.rst",
    "paired_differences.png": "paired_differences.rst",
    "confusion.png": "confusion.rst",
    "per_class_recall.png": "per_class_recall.rst",
    "training_curves.png": "training_curves.rst",
    "per_subject.png": "per_subject.rst",
    "faces_montage.png": "faces_montage.rst",
    "attention.png": "attention.rst",
    "face_qc.png": "face_qc.rst",
    "face_strips.png": "face_strips.rst",
}
# The metric tables as HTML files, for Snakemake's report -> their caption files.
TABLE_FILES = {"headline.html": "headline_table.rst", "comparisons.html": "comparisons_table.rst",
               "published.html": "published_table.rst"}
