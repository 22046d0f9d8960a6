"""first_existing_local_repository: like new_local_repository, but takes the
first of several candidate system paths that contains `probe`. Fully local.

When no path has it, the repository still exists: its targets are marked
incompatible (//tools/cuda:cuda_unavailable), so `bazel build //...` skips
what depends on them instead of failing on a machine without the headers."""

def _impl(rctx):
    for p in rctx.attr.paths:
        if rctx.path(p + "/" + rctx.attr.probe).exists:
            for child in rctx.path(p).readdir():
                if child.basename not in ("BUILD", "BUILD.bazel", "WORKSPACE"):
                    rctx.symlink(child, child.basename)
            rctx.symlink(rctx.attr.build_file, "BUILD.bazel")
            rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
            rctx.file("SELECTED_PATH", p + "\n")
            return
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("SELECTED_PATH", "none of %s contains %s\n" % (rctx.attr.paths, rctx.attr.probe))
    rctx.file("BUILD.bazel", "\n".join([
        'package(default_visibility = ["//visibility:public"])',
        "[cc_library(",
        "    name = n,",
        '    target_compatible_with = ["@stpain//tools/cuda:cuda_unavailable"],',
        ") for n in %s]" % repr(rctx.attr.fallback_targets),
        "",
    ]))

first_existing_local_repository = repository_rule(
    implementation = _impl,
    attrs = {
        "paths": attr.string_list(mandatory = True),
        "probe": attr.string(mandatory = True),
        "build_file": attr.label(mandatory = True, allow_single_file = True),
        # Targets the fallback BUILD declares (incompatible) when no path matches.
        "fallback_targets": attr.string_list(default = []),
    },
    local = True,
)
