// Rewrites a ConvNeXt safetensors checkpoint in another naming (timm,
// official, torchvision) and/or precision. The source naming is detected.
//   bazel run //examples:convert_convnext -- --in model.safetensors --out tv.safetensors --to torchvision
#include <cstdio>

#include "examples/cli.hpp"
#include "stpain/models/convnext_weights.hpp"

using namespace stpain;

int main(int argc, char** argv) {
  std::string in, out, to = "timm", dtype = "keep";
  examples::Cli cli("convert_convnext", "rewrites a ConvNeXt checkpoint in another naming or precision");
  cli.path_option("--in", in, "source checkpoint (.safetensors, any of the three namings)")
      .path_option("--out", out, "destination checkpoint (written atomically)")
      .option("--to", to, "naming to write: timm, official or torchvision")
      .option("--dtype", dtype, "f32, f16, bf16 or keep");
  if (!cli.parse(argc, argv)) return cli.exit_code();
  try {
    STPAIN_CHECK(!in.empty() && !out.empty(), Error, "--in and --out are required");
    std::optional<safetensors::DType> d;
    if (dtype == "f32") d = safetensors::DType::F32;
    else if (dtype == "f16") d = safetensors::DType::F16;
    else if (dtype == "bf16") d = safetensors::DType::BF16;
    else STPAIN_CHECK(dtype == "keep", Error, "--dtype must be f32, f16, bf16 or keep, not \"", dtype, "\"");
    const safetensors::File src(in);
    const ConvNeXtConfig config = infer_convnext_config(src);
    convert_convnext_checkpoint(in, out, parse_naming(to), d);
    std::printf("%s: ConvNeXt %s (%s naming, %zu tensors) -> %s (%s naming)\n", in.c_str(), config.name.c_str(),
                naming_name(detect_convnext_naming(src)), src.tensors().size(), out.c_str(), to.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "convert_convnext: %s\n", e.what());
    return 1;
  }
  return 0;
}
