use std::time::Instant;
use tch::{CModule, Device, IValue, Kind, Tensor};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: i32 = args[2].parse().unwrap();
    tch::set_num_threads(threads);
    let m = CModule::load_on_device(&args[1], Device::Cpu).unwrap();
    let x = Tensor::rand([1, 512, 512, 3], (Kind::Float, Device::Cpu)) * 255.0;
    tch::no_grad(|| {
        for method in ["heads", "forward", "heads", "forward"] {
            for _ in 0..5 {
                let _ = m
                    .method_is(method, &[IValue::Tensor(x.shallow_clone())])
                    .unwrap();
            }
            let t = Instant::now();
            for _ in 0..30 {
                let _ = m
                    .method_is(method, &[IValue::Tensor(x.shallow_clone())])
                    .unwrap();
            }
            println!("{method} {:.1} ms", t.elapsed().as_secs_f64() / 30.0 * 1e3);
        }
    });
}
