"""cuda_library(): compile .cu files with the system nvcc -- no rules_cuda.

Targets are only built with `--config=cuda` (== --define=cuda=true); in the
default configuration they are incompatible and silently skipped by `//...`,
so CPU-only machines never need nvcc.
"""

load("@bazel_tools//tools/cpp:toolchain_utils.bzl", "find_cpp_toolchain")

NVCC = "/usr/local/cuda/bin/nvcc"

# Hopper (H100/H200). Use "90a" only for arch-specific features (wgmma, setmaxnreg);
# sm_90a cubins do not run on other GPUs.
DEFAULT_GPU_ARCHS = ["90"]

# nvcc flags of the .cu files that include the library: the host flags of
# every g++ target (.bazelrc), so inline code agrees between the two
# compilers (-march=x86-64-v3 under --config=gpu_bundle, for another
# machine's CPU); Eigen's and the lambdas' harmless nvcc notes silenced.
STPAIN_NVCC_COPTS = [
    "-Xcompiler=-fopenmp",
    "-diag-suppress=20012,445",
] + select({
    "//tools/cuda:portable": ["-Xcompiler=-march=x86-64-v3"],
    "//conditions:default": ["-Xcompiler=-march=native"],
})

CUDA_ONLY = select({
    "//tools/cuda:enabled": [],
    "//conditions:default": ["//tools/cuda:cuda_unavailable"],
})

def _nvcc_archive_impl(ctx):
    cc_toolchain = find_cpp_toolchain(ctx)
    cctx = cc_common.merge_cc_infos(
        cc_infos = [d[CcInfo] for d in ctx.attr.deps],
    ).compilation_context

    args = [
        "-std=" + ctx.attr.std,
        "-O3",
        "-ccbin",
        ctx.attr.host_compiler,
        "-Xcompiler",
        "-fPIC",
        "--expt-relaxed-constexpr",
        "--extended-lambda",
        "-I.",  # the workspace root, as for cc_* targets
    ]
    for a in ctx.attr.gpu_archs:
        args.append("-gencode=arch=compute_%s,code=sm_%s" % (a, a))

    # Embed PTX for the newest arch so newer GPUs can JIT it.
    args.append("-gencode=arch=compute_%s,code=compute_%s" % (ctx.attr.gpu_archs[-1], ctx.attr.gpu_archs[-1]))
    args += ["-D" + d for d in cctx.defines.to_list()]
    args += ["-I" + i for i in cctx.includes.to_list()]
    args += ["-I" + i for i in cctx.quote_includes.to_list()]
    for i in cctx.system_includes.to_list():
        args += ["-isystem", i]
    args += ctx.attr.copts

    inputs = depset(ctx.files.srcs + ctx.files.hdrs, transitive = [cctx.headers])
    objs = []
    for src in ctx.files.srcs:
        obj = ctx.actions.declare_file("_nvcc/%s/%s.o" % (ctx.label.name, src.basename.rsplit(".", 1)[0]))
        ctx.actions.run(
            executable = ctx.attr.nvcc,
            arguments = args + ["-c", src.path, "-o", obj.path],
            inputs = inputs,
            outputs = [obj],
            mnemonic = "NvccCompile",
            progress_message = "Compiling CUDA %s" % src.short_path,
            use_default_shell_env = True,  # PATH for nvcc's helper tools
        )
        objs.append(obj)

    archive = ctx.actions.declare_file("lib%s.a" % ctx.label.name)
    ctx.actions.run(
        executable = cc_toolchain.ar_executable,
        arguments = ["rcsD", archive.path] + [o.path for o in objs],
        inputs = depset(objs, transitive = [cc_toolchain.all_files]),
        outputs = [archive],
        mnemonic = "NvccArchive",
    )
    # An (empty) C++ source that depends on the archive: cc_library does not
    # build precompiled srcs for `bazel build //pkg:lib`, only when linking.
    # Compiling this stub forces nvcc to run for the library target as well.
    stub = ctx.actions.declare_file("_nvcc/%s/stamp.cc" % ctx.label.name)
    ctx.actions.run_shell(
        inputs = [archive],
        outputs = [stub],
        command = "echo '// built from %s' > %s" % (archive.basename, stub.path),
        mnemonic = "NvccStamp",
    )
    return [DefaultInfo(files = depset([archive, stub]))]

_nvcc_archive = rule(
    implementation = _nvcc_archive_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".cu"]),
        "hdrs": attr.label_list(allow_files = True),
        "deps": attr.label_list(providers = [CcInfo]),
        "copts": attr.string_list(),
        "gpu_archs": attr.string_list(default = DEFAULT_GPU_ARCHS),
        "std": attr.string(default = "c++20"),
        "nvcc": attr.string(default = NVCC),
        "host_compiler": attr.string(default = "/usr/bin/g++"),
        "_cc_toolchain": attr.label(default = "@bazel_tools//tools/cpp:current_cc_toolchain"),
    },
    toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],
    fragments = ["cpp"],
)

def cuda_library(
        name,
        srcs,
        hdrs = [],
        deps = [],
        cuda_deps = ["@cuda//:cudart"],
        copts = [],
        gpu_archs = DEFAULT_GPU_ARCHS,
        visibility = None,
        **kwargs):
    """A cc_library whose .cu sources are compiled by nvcc.

    Args:
      name: target name; depend on it like any cc_library.
      srcs: .cu files (device code + host wrappers).
      hdrs: plain C++ headers exposing the host API (no CUDA syntax).
      deps: cc_library deps whose headers the .cu files include.
      cuda_deps: CUDA runtime libraries to link (e.g. "@cuda//:cublas").
      copts: extra nvcc flags.
      gpu_archs: SM versions, e.g. ["80", "90"].
      visibility: visibility.
      **kwargs: passed to the wrapping cc_library.
    """
    _nvcc_archive(
        name = name + "_nvcc",
        srcs = srcs,
        hdrs = hdrs,
        deps = deps,
        copts = copts,
        gpu_archs = gpu_archs,
        target_compatible_with = CUDA_ONLY,
        visibility = ["//visibility:private"],
    )
    native.cc_library(
        name = name,
        srcs = [":" + name + "_nvcc"],
        hdrs = hdrs,
        deps = deps + select({
            "//tools/cuda:enabled": cuda_deps,
            "//conditions:default": [],
        }),
        linkstatic = True,
        target_compatible_with = CUDA_ONLY,
        visibility = visibility,
        **kwargs
    )
