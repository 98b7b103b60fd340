"""Small pieces every part of the suite shares (agents, runner, sweep, analysis, warm-start).

Each module here imports only the standard library, so any entry point can use it without
pulling in JAX, TensorFlow or Dopamine: ``files`` (atomic writes), ``processes`` (child
processes that die with their parent, thread flags), ``suggest`` ("did you mean" hints),
``seeds`` (the seed syntax of the command lines that run several seeds), ``quiet`` (the entry
points' quiet start-up: TensorFlow, XLA and gym messages filtered).
"""
