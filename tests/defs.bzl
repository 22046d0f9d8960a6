"""stpain_test: one Catch2 binary per test file, with the fixtures it reads."""

def stpain_test(name, srcs = None, deps = [], data = [], size = "small", **kwargs):
    native.cc_test(
        name = name,
        size = size,
        srcs = srcs or [name + ".cpp"],
        data = data + native.glob(["fixtures/*.safetensors"]),
        deps = deps + [":support"],
        **kwargs
    )
