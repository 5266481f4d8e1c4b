"""The canonical emotion label set shared by every dataset adapter, model and report."""

# The six basic emotions of eNTERFACE'05, in the order used for class indices and probability columns.
EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
# Every canonical label a dataset may map to; a config's `classes` is a subset of this, in this order. After the six
# and neutral: RAVDESS's calm, then the four that MAFW adds to the basic seven.
CANONICAL = EMOTIONS + ("neutral", "calm", "contempt", "anxiety", "helplessness", "disappointment")
# eNTERFACE'05 folder/file abbreviations.
ENTERFACE_CODES = {"an": "anger", "di": "disgust", "fe": "fear", "ha": "happiness", "sa": "sadness", "su": "surprise"}
