"""The fixed sets of choices the command line offers, in a module light enough for `--help`
(importing the analyzer would build every layer kind first)."""

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}
MODEL_DTYPES = ("float32", "float16", "bfloat16", "float64")  # what PyTorch builds and runs a model in
OPTIMIZER_STATES = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}  # values kept per trainable parameter
# the same optimizers as torch.optim builds them: (class name, options)
OPTIMIZERS = {"sgd": ("SGD", {}), "momentum": ("SGD", {"momentum": 0.9}), "adam": ("Adam", {}), "adamw": ("AdamW", {})}
MIXED_PRECISION = {"bf16": "bfloat16", "fp16": "float16"}
RANKDIRS = ("TB", "LR")
DETAILS = ("compact", "full")
REPORT_FORMATS = ("table", "json", "markdown", "csv", "html")  # inspect
TABLE_FORMATS = ("table", "json")                     # diff, run
SOLVE_FORMATS = ("text", "json")
# inspect --columns: the columns the layer table can show after the name (views/report.COLUMNS says what each is)
COLUMNS = ("kind", "input", "output", "kernel", "formula", "params", "params_percent", "trainable", "trainable_params",
           "neurons", "macs", "batch_macs", "flops", "batch_flops", "memory", "scores", "kv_cache", "rf")
